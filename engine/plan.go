package engine

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// defaultParallelism is how many steps run at once when neither the plan
// nor the caller says.
const defaultParallelism = 4

var (
	stepIDPattern  = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	varNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
)

// Plan is a loaded, validated plan: every variable expanded, every step's
// parameters decoded and its implementation built.
type Plan struct {
	File          string // as given to Load
	Dir           string // absolute directory of File (${plan.dir})
	Name          string
	Description   string
	Parallelism   int
	FailurePolicy FailurePolicy
	Vars          map[string]string // resolved values of the declared vars
	Steps         []*PlanStep       // in file order
	byID          map[string]*PlanStep
}

// PlanStep is one step of a plan.
type PlanStep struct {
	ID          string
	Type        string
	Description string
	Needs       []string
	Timeout     time.Duration // 0: none
	Retry       Retry         // Attempts >= 1
	retrySet    bool          // Retry came from the plan, not the built-in default
	Params      any           // pointer to the type's parameter struct
	Impl        Step
	Pos         Pos // position of the step's key

	needPositions []Pos
}

// ids is the set of the plan's step ids.
func (p *Plan) ids() map[string]bool {
	ids := make(map[string]bool, len(p.Steps))
	for _, st := range p.Steps {
		ids[st.ID] = true
	}
	return ids
}

// Step returns the step with the given id.
func (p *Plan) Step(id string) (*PlanStep, bool) {
	s, ok := p.byID[id]
	return s, ok
}

// LoadOptions are the inputs to loading besides the file itself.
type LoadOptions struct {
	Registry *Registry
	Host     Host
	// Overrides replace the plan's vars (and may replace host.* facts, for
	// example to provision a rootfs for another architecture). Later
	// entries win.
	Overrides []VarOverride
	// Vars is a shorthand for Overrides without origins (tests, embedders).
	Vars map[string]string
}

// maxPlanBytes bounds a plan file.
const maxPlanBytes = 4 << 20

// Load reads and validates a plan file. When the plan is invalid the error is
// Diagnostics, holding every problem found, sorted by position; overrides
// naming undeclared variables give an *UnknownVarError.
func Load(file string, opts LoadOptions) (*Plan, error) {
	data, err := readPlan(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data, opts)
}

// readPlan reads a plan file, refusing anything that is not a regular file
// (a FIFO would block for ever) and anything past maxPlanBytes.
func readPlan(file string) ([]byte, error) {
	// O_NONBLOCK: opening a fifo must not wait for a writer; the stat
	// below then refuses it.
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read plan %s: not a regular file", file)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPlanBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if len(data) > maxPlanBytes {
		return nil, fmt.Errorf("read plan %s: larger than %s", file, byteSize(maxPlanBytes))
	}
	return data, nil
}

// planDoc is the top level of a plan file. Its tags also generate the schema.
type planDoc struct {
	APIVersion    string    `yaml:"apiVersion" jsonschema:"required,enum=rootfsctl/v1" jsonschema_description:"Plan format version. Always rootfsctl/v1."`
	Kind          string    `yaml:"kind" jsonschema:"required,enum=Plan" jsonschema_description:"Always Plan."`
	Name          string    `yaml:"name" jsonschema:"required,pattern=^[a-z0-9][a-z0-9-]*$" jsonschema_description:"Name of the plan: lowercase letters, digits and dashes."`
	Description   string    `yaml:"description" jsonschema_description:"Free text."`
	Vars          yaml.Node `yaml:"vars" jsonschema_description:"String variables, used as ${name} in any value under steps. Values may use other variables and the built-ins ${host.arch}, ${host.os}, ${host.hostname}, ${host.kernel}, ${plan.dir}. $${ writes a literal ${."`
	Parallelism   int       `yaml:"parallelism" jsonschema:"minimum=1,maximum=1024" jsonschema_description:"How many steps may run at once."`
	FailurePolicy string    `yaml:"failurePolicy" jsonschema:"enum=fail-fast,enum=keep-going" jsonschema_description:"fail-fast cancels everything on the first failure; keep-going runs independent branches to the end."`
	Defaults      *defaults `yaml:"defaults" jsonschema_description:"Applied to every step that does not set its own."`
	Steps         yaml.Node `yaml:"steps" jsonschema:"required" jsonschema_description:"The steps, keyed by id."`
	Extensions    yaml.Node `yaml:"x-*" jsonschema_description:"Keys starting with x- are ignored: a place for YAML anchors shared by steps."`
}

// planDefaults is what a plan's header starts from.
var planDefaults = planDoc{Parallelism: defaultParallelism, FailurePolicy: string(FailFast)}

type defaults struct {
	Timeout Duration `yaml:"timeout" jsonschema_description:"Time limit for each attempt of a step (Go duration: 90s, 15m; 0 for none)."`
	Retry   *Retry   `yaml:"retry" jsonschema_description:"Retry policy."`
}

// stepDoc is one entry under steps:, before its parameters are decoded.
type stepDoc struct {
	Type        string    `yaml:"type" jsonschema:"required" jsonschema_description:"The step type (rootfsctl steps lists them)."`
	Description string    `yaml:"description" jsonschema_description:"Free text."`
	Needs       []string  `yaml:"needs" jsonschema_description:"Ids of steps that must finish successfully before this one starts."`
	Timeout     *Duration `yaml:"timeout" jsonschema_description:"Time limit for each attempt (Go duration: 90s, 15m; 0 for none)."`
	Retry       *Retry    `yaml:"retry" jsonschema_description:"Retry policy; attempts are spaced by exponential backoff with jitter."`
	With        yaml.Node `yaml:"with" jsonschema_description:"The step type's parameters."`
}

// Parse validates a plan held in memory; file names it in messages.
func Parse(file string, data []byte, opts LoadOptions) (*Plan, error) {
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	l := &loader{d: &diags{file: file}, reg: opts.Registry}
	p := l.parse(data, opts)
	if l.unknown != nil {
		return nil, l.unknown
	}
	if l.d.found > 0 {
		return nil, l.d.sorted()
	}
	return p, nil
}

// secondDocument returns the second YAML document of data, or nil.
func secondDocument(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first, second yaml.Node
	if dec.Decode(&first) != nil || dec.Decode(&second) != nil {
		return nil
	}
	if len(second.Content) > 0 {
		return second.Content[0]
	}
	return &second
}
