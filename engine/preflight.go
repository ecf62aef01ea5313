package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/budget"
)

// Severity grades a preflight result.
type Severity string

const (
	SeverityOK      Severity = "ok"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// CheckResult is one finding of a preflight check. Messages never contain
// raw URLs, credentials, image references or file contents: Target names
// what was checked in words a log may keep ("kubelet 1.33.1 linux/amd64").
type CheckResult struct {
	Name     string   `json:"name"`
	Target   string   `json:"target"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Ignored  bool     `json:"ignored,omitempty"`
}

// CheckTimeout bounds each preflight check: the engine runs every check
// under a context with this deadline, and checks say so in their messages
// when it passes. It is the one value the README documents.
const CheckTimeout = 10 * time.Second

// Check is one non-mutating preflight check. Building the list of checks is
// separate from running them.
type Check interface {
	Name() string
	Run(ctx context.Context) []CheckResult
}

// Preflighter is implemented by steps that contribute preflight checks.
type Preflighter interface {
	Preflight() []Check
}

// PreflightOptions control which findings fail the preflight.
type PreflightOptions struct {
	Ignore         []string // check names whose errors become warnings; "all" for every check
	FailOnWarnings bool
	Targets        []string // only the checks of these steps and what they need
	Parallelism    int      // checks run at once; default 8
}

// PreflightSummary counts results by severity.
type PreflightSummary struct {
	OK       int `json:"ok"`
	Warnings int `json:"warnings"`
	Errors   int `json:"errors"`
}

// PreflightReport is the outcome of all checks, sorted by name and target.
type PreflightReport struct {
	Status Outcome `json:"status"` // ok, failed or interrupted; invalid or error when the checks never ran
	// Error and Diagnostics say why the checks never ran.
	Error       string           `json:"error,omitempty"`
	Diagnostics Diagnostics      `json:"diagnostics,omitempty"`
	Checks      []CheckResult    `json:"checks"`
	Summary     PreflightSummary `json:"summary"`
}

// Preflight runs the checks contributed by the plan's (selected) steps,
// concurrently, each under CheckTimeout. It changes nothing on the system.
// When ctx is cancelled it returns the partial report and ErrInterrupted.
func Preflight(ctx context.Context, g *Graph, opts PreflightOptions) (*PreflightReport, error) {
	ids, err := g.Select(opts.Targets)
	if err != nil {
		return nil, err
	}
	steps := make([]*PlanStep, len(ids))
	for i, id := range ids {
		steps[i] = g.plan.byID[id]
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = defaultPreflightParallelism
	}
	b := budget.New(opts.Parallelism)
	return runPreflight(budget.With(ctx, b), b, steps, opts)
}

// defaultPreflightParallelism is how many checks a plain preflight runs at
// once.
const defaultPreflightParallelism = 8

// runPreflight runs the checks of steps, each holding a slot of b (the
// apply's budget, also in ctx for the probes inside a check).
func runPreflight(ctx context.Context, b *budget.Budget, steps []*PlanStep, opts PreflightOptions) (*PreflightReport, error) {
	var checks []Check
	for _, st := range steps {
		if pf, ok := st.Impl.(Preflighter); ok {
			checks = append(checks, pf.Preflight()...)
		}
	}
	results := make([][]CheckResult, len(checks))
	b.Run(ctx, len(checks), func(ctx context.Context, i int) error {
		cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
		defer cancel()
		results[i] = runCheck(cctx, checks[i])
		return nil
	})

	rep := &PreflightReport{Status: OutcomeOK, Checks: []CheckResult{}}
	rep.add(results, ignoreSet(opts.Ignore))
	sort.SliceStable(rep.Checks, func(i, j int) bool {
		a, b := rep.Checks[i], rep.Checks[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Target < b.Target
	})
	if ctx.Err() != nil {
		// What the checks say now is about being stopped, not the system.
		rep.Status = OutcomeInterrupted
		return rep, ErrInterrupted
	}
	if rep.Summary.Errors > 0 || (opts.FailOnWarnings && rep.Summary.Warnings > 0) {
		rep.Status = OutcomeFailed
	}
	return rep, nil
}

// ignoreSet says which check names' errors are warnings ("all": every one).
func ignoreSet(names []string) func(check string) bool {
	all, set := false, map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		all = all || n == "all"
		set[n] = true
	}
	return func(check string) bool { return all || set[strings.ToLower(check)] }
}

// add counts and appends the checks' results, errors of ignored checks
// turned into warnings.
func (rep *PreflightReport) add(results [][]CheckResult, ignored func(string) bool) {
	for _, rs := range results {
		for _, r := range rs {
			if r.Severity == SeverityError && ignored(r.Name) {
				r.Severity, r.Ignored = SeverityWarning, true
			}
			switch r.Severity {
			case SeverityOK:
				rep.Summary.OK++
			case SeverityWarning:
				rep.Summary.Warnings++
			default:
				rep.Summary.Errors++
			}
			rep.Checks = append(rep.Checks, r)
		}
	}
}

// runCheck turns a panic in a check into an error result.
func runCheck(ctx context.Context, c Check) (rs []CheckResult) {
	defer func() {
		if p := recover(); p != nil {
			rs = []CheckResult{{Name: c.Name(), Severity: SeverityError, Message: fmt.Sprintf("check panicked: %v", p)}}
		}
	}()
	return c.Run(ctx)
}
