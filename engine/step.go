package engine

import (
	"context"
	"fmt"
	"reflect"
	"sort"

	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// Step is what a step type builds from its parameters. The engine calls Check
// first and Apply only when Check says a change is needed.
//
// A step's logger is zerolog.Ctx(ctx): it carries the step id and type.
type Step interface {
	// Check reports whether Apply would change anything, and why. It must not
	// modify the system.
	Check(ctx context.Context) (Change, error)
	// Apply brings the system to the declared state.
	Apply(ctx context.Context) error
}

// Change is the outcome of a step's Check.
type Change struct {
	Needed bool
	Reason string // why a change is needed, or why the step is up to date
}

// UpToDate and NeedsChange build Change values.
func UpToDate(reason string) Change    { return Change{Reason: reason} }
func NeedsChange(reason string) Change { return Change{Needed: true, Reason: reason} }

// Permanent marks an error that a retry cannot fix (bad input, a checksum
// that will not match next time either). The engine does not retry it.
func Permanent(err error) error { return retry.Permanent(err) }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return retry.IsPermanent(err) }

// StepType is one kind of step a plan can use.
type StepType struct {
	Name    string
	Summary string // one line, shown by `rootfsctl steps`
	Doc     string // longer documentation
	// Checks names the preflight checks the type's steps may contribute,
	// so that a command line can be checked before any plan is loaded.
	Checks []string

	params   reflect.Type
	defaults reflect.Value // a P: what decoding starts from
	build    func(id string, params any) (Step, error)
}

// NewParams returns a fresh pointer to the type's parameter struct.
func (t *StepType) NewParams() any { return reflect.New(t.params).Interface() }

// Registry maps step type names to their definitions. cmd builds one and
// hands it to the engine; the engine knows no concrete step type.
type Registry struct {
	types map[string]*StepType
}

func NewRegistry() *Registry { return &Registry{types: map[string]*StepType{}} }

// Register adds a step type whose parameters are a P. The parameters a
// plan leaves out keep their value in defaults (a default string may use
// ${host.arch} and the other variables). build receives the decoded
// parameters and parses them, once, into the step; when they do not make
// one, it returns FieldErrors, which the loader places at their fields.
func Register[P any](r *Registry, t StepType, defaults P, build func(id string, p *P) (Step, error)) {
	if _, dup := r.types[t.Name]; dup {
		panic(fmt.Sprintf("engine: step type %q registered twice", t.Name))
	}
	structFields(reflect.TypeFor[P]()) // tags are checked now, not in a plan
	t.params = reflect.TypeFor[P]()
	t.defaults = reflect.ValueOf(defaults)
	t.build = func(id string, p any) (Step, error) { return build(id, p.(*P)) }
	r.types[t.Name] = &t
}

// CheckNames is every preflight check name the registered types declare, sorted.
func (r *Registry) CheckNames() []string {
	var out []string
	for _, t := range r.Types() {
		for _, c := range t.Checks {
			out = appendNew(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// Lookup returns the step type called name.
func (r *Registry) Lookup(name string) (*StepType, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Types returns every registered type, sorted by name.
func (r *Registry) Types() []*StepType {
	out := make([]*StepType, 0, len(r.types))
	for _, t := range r.types {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Registry) names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	return out
}

// Prefetcher is implemented by steps that can do part of their work before
// their needs have finished without touching anything the needs produce,
// such as downloading into a cache. When a run starts, the engine calls
// Prefetch for every such step whose Check says a change is needed, at
// most Parallelism at a time; the step's own Check and Apply wait for its
// prefetch. A failed prefetch is not a failure: Apply does the work again
// and reports what goes wrong.
type Prefetcher interface {
	Prefetch(ctx context.Context) error
}

// Releaser is implemented by prefetching steps that keep something for
// their Apply beyond the run's own state (files staged beside the
// machine). Once the run is over, whatever became of the step, the engine
// calls Release for every such step whose prefetch ran.
type Releaser interface {
	Release(ctx context.Context)
}

// Tidier is implemented by steps that may find leftovers of an interrupted
// run (temporary files) even when they are up to date. In apply mode the
// engine calls Tidy for an up-to-date step; plan never does. Errors are
// logged, not failures.
type Tidier interface {
	Tidy(ctx context.Context) error
}
