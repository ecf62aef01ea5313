package engine

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// APIVersion and Kind are the only plan header values this version reads.
const (
	APIVersion         = "rootfsctl/v1"
	Kind               = "Plan"
	DefaultParallelism = 4
)

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

// MaxPlanBytes bounds a plan file.
const MaxPlanBytes = 4 << 20

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
// (a FIFO would block for ever) and anything past MaxPlanBytes.
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
	data, err := io.ReadAll(io.LimitReader(f, MaxPlanBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if len(data) > MaxPlanBytes {
		return nil, fmt.Errorf("read plan %s: larger than %s", file, byteSize(MaxPlanBytes))
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
var planDefaults = planDoc{Parallelism: DefaultParallelism, FailurePolicy: string(FailFast)}

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
	if len(l.d.list) > 0 {
		return nil, l.d.list.Sort()
	}
	return p, nil
}

// loader holds what parsing one plan file shares between its phases.
type loader struct {
	d       *diags
	reg     *Registry
	p       *Plan
	vars    *varResolver
	defs    *defaults
	unknown *UnknownVarError
}

func (l *loader) parse(data []byte, opts LoadOptions) *Plan {
	d := l.d
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		sp := locateSyntaxError(d.file, data, err)
		d.atPos(sp.pos, "%s", sp.msg)
		return nil
	}
	if second := secondDocument(data); second != nil {
		// What follows a stray --- would never run: say so rather than
		// ignore it.
		d.at(second, "a plan file holds one YAML document; another starts here (a stray ---?)")
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.atPos(Pos{File: d.file, Line: 1, Col: 1}, "plan is empty")
		return nil
	}
	root := resolveAlias(doc.Content[0])

	var hdr planDoc
	dec := newDecoder(d)
	dec.decode(root, reflect.ValueOf(&hdr).Elem(), reflect.ValueOf(planDefaults), "", "")
	if root.Kind != yaml.MappingNode {
		return nil
	}

	abs, err := filepath.Abs(d.file)
	if err != nil {
		d.atPos(Pos{File: d.file}, "resolve plan directory: %v", err)
		return nil
	}
	l.p = &Plan{
		File: d.file, Dir: filepath.Dir(abs),
		Name: hdr.Name, Description: hdr.Description,
		Parallelism: hdr.Parallelism, FailurePolicy: FailurePolicy(hdr.FailurePolicy),
		byID: map[string]*PlanStep{},
	}
	l.defs = hdr.Defaults
	l.resolveVars(&hdr.Vars, opts)
	l.parseSteps(&hdr.Steps)
	checkNeeds(d, l.p)
	return l.p
}

// overrides merges the shorthand map into the ordered overrides.
func (o LoadOptions) overrides() []VarOverride {
	out := append([]VarOverride(nil), o.Overrides...)
	names := make([]string, 0, len(o.Vars))
	for n := range o.Vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, VarOverride{Name: n, Value: o.Vars[n], Origin: "override " + n})
	}
	return out
}

// resolveVars resolves the declared vars with overrides and built-ins.
func (l *loader) resolveVars(varsNode *yaml.Node, opts LoadOptions) {
	d := l.d
	builtins := opts.Host.vars()
	builtins["plan.dir"] = l.p.Dir
	r := &varResolver{
		d: d, raw: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, origin: map[string]string{},
		builtins: builtins, resolved: map[string]string{}, from: map[string][]string{}, state: map[string]int{},
	}
	l.vars = r
	var declared []string
	if varsNode.Kind != 0 && !isNull(varsNode) {
		if varsNode.Kind != yaml.MappingNode {
			d.at(varsNode, "vars: expected a mapping, got %s", kindName(varsNode))
		} else {
			for _, kv := range d.pairs(varsNode) {
				k, v := kv[0], resolveAlias(kv[1])
				switch {
				case !varNamePattern.MatchString(k.Value):
					d.at(k, "vars: invalid variable name %q (letters, digits, _ and -, not starting with a digit)", k.Value)
					continue
				case r.raw[k.Value] != nil:
					d.at(k, "vars: duplicate variable %q", k.Value)
					continue
				case v.Kind != yaml.ScalarNode:
					d.at(v, "vars.%s: expected a string, got %s", k.Value, kindName(v))
					continue
				}
				r.raw[k.Value], r.keys[k.Value] = v, k
				declared = append(declared, k.Value)
			}
		}
	}
	// Overrides replace declared values (as literal text, which may itself
	// refer to variables) and may replace built-ins.
	for _, o := range opts.overrides() {
		if _, ok := r.raw[o.Name]; ok {
			k := r.keys[o.Name]
			r.raw[o.Name] = &yaml.Node{Kind: yaml.ScalarNode, Value: o.Value, Line: k.Line, Column: k.Column}
			r.origin[o.Name] = o.Origin
			continue
		}
		if _, ok := builtins[o.Name]; ok {
			builtins[o.Name] = o.Value
			r.from[o.Name] = []string{o.Origin}
			continue
		}
		if l.unknown == nil {
			l.unknown = &UnknownVarError{Known: declared}
		}
		l.unknown.Unknown = append(l.unknown.Unknown, o)
	}
	l.p.Vars = map[string]string{}
	for _, name := range declared {
		if v, ok := r.resolve(name); ok {
			l.p.Vars[name] = v
		}
	}
}

func (l *loader) parseSteps(stepsNode *yaml.Node) {
	d, p := l.d, l.p
	if stepsNode.Kind == 0 {
		return // reported as missing by the header decoder
	}
	if stepsNode.Kind != yaml.MappingNode {
		d.at(stepsNode, "steps: expected a mapping of step ids to steps, got %s", kindName(stepsNode))
		return
	}
	if len(stepsNode.Content) == 0 {
		d.at(stepsNode, "steps: a plan needs at least one step")
	}
	for _, kv := range d.pairs(stepsNode) {
		k, v := kv[0], resolveAlias(kv[1])
		id := k.Value
		if !stepIDPattern.MatchString(id) {
			d.at(k, "invalid step id %q (lowercase letters, digits and dashes, starting with a letter)", id)
		}
		if prev, dup := p.byID[id]; dup {
			d.at(k, "duplicate step id %q (first defined at line %d)", id, prev.Pos.Line)
			continue
		}
		s := &PlanStep{ID: id, Pos: nodePos(d.file, k)}
		p.byID[id] = s
		p.Steps = append(p.Steps, s)
		l.parseStep(s, v)
	}
}

func (l *loader) parseStep(s *PlanStep, n *yaml.Node) {
	d := l.d
	if n.Kind != yaml.MappingNode {
		d.at(n, "%s: expected a mapping with type and with, got %s", s.ID, kindName(n))
		return
	}
	before := len(d.list)
	// Variables are expanded everywhere in a step except in type and needs:
	// the graph's shape stays the same whatever the variables say.
	ex := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	e := newExpander(d, l.vars)
	e.active[n] = true
	for _, kv := range d.pairs(n) {
		val := kv[1]
		if kv[0].Value != "type" && kv[0].Value != "needs" {
			val = e.interpolate(val, s.ID+"."+kv[0].Value)
		}
		ex.Content = append(ex.Content, kv[0], val)
	}
	var sd stepDoc
	dec := newDecoder(d)
	dec.quiet, dec.notes, dec.expanded = e.poisoned, e.notes, e.expanded
	dec.decode(ex, reflect.ValueOf(&sd).Elem(), reflect.Value{}, s.ID, "")
	s.Type, s.Description, s.Needs = sd.Type, sd.Description, sd.Needs
	for i := range sd.Needs {
		s.needPositions = append(s.needPositions, nodePos(d.file, dec.fields[fmt.Sprintf("needs[%d]", i)]))
	}
	s.Timeout, s.Retry, s.retrySet = l.policy(sd)
	if sd.Type == "" {
		return
	}
	typeNode := dec.fields["type"]
	st, ok := l.reg.Lookup(sd.Type)
	if !ok {
		hint := suggestOrList(sd.Type, l.reg.names())
		if strings.Contains(sd.Type, "${") {
			hint = " (variables are not expanded in type and needs: the graph's shape never depends on them)"
		}
		d.at(typeNode, "%s: unknown step type %q%s", s.ID, sd.Type, hint)
		return
	}
	withNode := &sd.With
	if withNode.Kind == 0 {
		withNode = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	if len(d.list) > before || dec.errs > 0 {
		l.buildParams(s, st, withNode, e, false)
		return
	}
	l.buildParams(s, st, withNode, e, true)
}

// buildParams decodes a step's with: into its type's parameters, starting
// from the type's defaults, and has the type build the step from them.
// The builder runs even when some fields failed, so every problem shows
// at once; its findings about failed fields are dropped (place), and no
// step is kept unless everything held (keep false: the step itself failed).
func (l *loader) buildParams(s *PlanStep, st *StepType, withNode *yaml.Node, e *expander, keep bool) {
	params := st.NewParams()
	pdec := newDecoder(l.d)
	pdec.quiet, pdec.notes, pdec.expanded = e.poisoned, e.notes, e.expanded
	pdec.expand = l.expandDefault
	pdec.defaultNote = l.defaultNote
	pdec.decode(withNode, reflect.ValueOf(params).Elem(), st.defaults, s.ID+".with", "")
	if len(e.poisoned) > 0 || pdec.failed[""] {
		// A value whose variables did not resolve is not the user's
		// value: checking it would only repeat the variable's problem.
		return
	}
	impl, err := st.build(s.ID, params)
	if fes, ok := fieldErrors(err); ok {
		pdec.place(withNode, fes, s.ID+".with", "")
	} else if err != nil {
		// Built from fields that failed, the error would only garble
		// what decoding said.
		if pdec.errs == 0 {
			l.d.at(withNode, "%s: %v", s.ID, err)
		}
		return
	}
	if keep && pdec.errs == 0 {
		s.Params, s.Impl = params, impl
	}
}

// expandDefault expands the variables in a default value ("${host.arch}").
func (l *loader) expandDefault(def string) string {
	if _, problem, _ := scanRefs(def); problem != "" {
		return def
	}
	if v, ok, _ := substitute(def, l.vars.resolve); ok {
		return v
	}
	return def
}

// defaultNote says which overrides a default's variables came from.
func (l *loader) defaultNote(def string) string {
	refs, _, _ := scanRefs(def)
	var from []string
	for _, r := range refs {
		from = appendNew(from, l.vars.from[r.name]...)
	}
	if len(from) == 0 {
		return ""
	}
	return " (value from " + strings.Join(from, ", ") + ")"
}

// policy is a step's timeout and retry policy: its own, else the plan's
// defaults, else the built-in ones.
func (l *loader) policy(sd stepDoc) (time.Duration, Retry, bool) {
	var timeout time.Duration
	switch {
	case sd.Timeout != nil:
		timeout = time.Duration(*sd.Timeout)
	case l.defs != nil:
		timeout = time.Duration(l.defs.Timeout)
	}
	r, set := Retry{Attempts: 1}, true
	switch {
	case sd.Retry != nil:
		r = *sd.Retry
	case l.defs != nil && l.defs.Retry != nil:
		r = *l.defs.Retry
	default:
		set = false
	}
	if r.Attempts == 0 {
		r.Attempts = 1
	}
	if r.Delay == 0 {
		r.Delay = Duration(DefaultRetryDelay)
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = Duration(DefaultRetryMaxDelay)
	}
	return timeout, r, set
}

func suggestOrList(got string, candidates []string) string {
	if s := suggest(got, candidates); s != "" {
		return s
	}
	return " (known types: " + validNames(candidates) + ")"
}

// checkNeeds reports needs naming missing steps or the step itself, and
// every dependency cycle at the needs entry that closes it.
func checkNeeds(d *diags, p *Plan) {
	// positions of needs entries, re-read from the source order
	ids := make([]string, 0, len(p.Steps))
	for _, s := range p.Steps {
		ids = append(ids, s.ID)
	}
	valid := map[string][]string{}
	for _, s := range p.Steps {
		seen := map[string]bool{}
		for i, need := range s.Needs {
			pos := s.needPos(i)
			switch {
			case need == s.ID:
				d.atPos(pos, "%s: a step cannot need itself", s.ID)
			case p.byID[need] == nil:
				d.atPos(pos, "%s: needs unknown step %q%s", s.ID, need, suggest(need, ids))
			case seen[need]:
				d.atPos(pos, "%s: needs %q more than once", s.ID, need)
			default:
				seen[need] = true
				valid[s.ID] = append(valid[s.ID], need)
			}
		}
	}
	cycles, more := findCycles(ids, valid)
	for _, c := range cycles {
		s := p.byID[c.from]
		d.atPos(s.needPos(indexOf(s.Needs, c.to)), "dependency cycle: %s", cyclePath(c.path))
	}
	if more > 0 {
		last := cycles[len(cycles)-1]
		s := p.byID[last.from]
		d.atPos(s.needPos(indexOf(s.Needs, last.to)), "and %d more dependency %s (fix the ones above first)", more, map[bool]string{true: "cycle", false: "cycles"}[more == 1])
	}
}

// cycle is a dependency cycle closed by the edge from -> to (from needs to).
type cycle struct {
	from, to string
	path     []string
}

// maxCycles bounds how many cycles are reported one by one: a plan of many
// steps can hold as many cycles as edges, and listing them all would take
// memory and output quadratic in its size.
const maxCycles = 20

// findCycles walks needs depth-first in file order and returns one cycle per
// back edge, the first maxCycles of them, and how many more there are.
// Iterative, so deep plans cannot overflow the stack.
func findCycles(ids []string, needs map[string][]string) (out []cycle, more int) {
	state := make(map[string]int, len(ids)) // 0 new, 1 on stack, 2 done
	type frame struct {
		id   string
		next int
	}
	for _, start := range ids {
		if state[start] != 0 {
			continue
		}
		stack := []frame{{id: start}}
		path := []string{start}
		state[start] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next >= len(needs[top.id]) {
				state[top.id] = 2
				stack = stack[:len(stack)-1]
				path = path[:len(path)-1]
				continue
			}
			n := needs[top.id][top.next]
			top.next++
			switch state[n] {
			case 0:
				state[n] = 1
				stack = append(stack, frame{id: n})
				path = append(path, n)
			case 1:
				if len(out) == maxCycles {
					more++
					continue
				}
				i := indexOf(path, n)
				cyc := append(append([]string(nil), path[i:]...), n)
				out = append(out, cycle{from: top.id, to: n, path: cyc})
			}
		}
	}
	return out, more
}

// cyclePath shows a cycle, its middle elided when it is long.
func cyclePath(path []string) string {
	if len(path) <= 12 {
		return strings.Join(path, " -> ")
	}
	return fmt.Sprintf("%s -> … (%d steps) … -> %s", strings.Join(path[:6], " -> "), len(path)-1, strings.Join(path[len(path)-4:], " -> "))
}

// needPos is filled in by the loader: the position of the i-th needs entry.
func (s *PlanStep) needPos(i int) Pos {
	if i < len(s.needPositions) {
		return s.needPositions[i]
	}
	return s.Pos
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
