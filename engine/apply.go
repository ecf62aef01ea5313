package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// ApplyOptions tune an apply; zero values fall back to the plan's settings.
type ApplyOptions struct {
	// Parallelism is the apply's one concurrency budget: steps, their
	// checks and prefetches, preflight checks and the work inside a step
	// (downloads, probes) all draw from it.
	Parallelism   int
	FailurePolicy FailurePolicy
	Targets       []string // run only these and what they need
	CheckOnly     bool     // run only the up-to-date checks (rootfsctl plan)
	Logger        zerolog.Logger
	Progress      Progress      // where steps report transfer progress; nil discards
	LockWait      time.Duration // how long to wait for another run's lock; 0 refuses at once
	LockDir       string        // where lock files live; default defaultLockDir()
	// Preflight, when set, runs the preflight checks of the steps that need
	// a change before anything is changed; a failure ends the apply.
	Preflight *PreflightOptions
	// Before runs, in order, once the machines are locked and before any
	// step is checked (not for check-only runs): clearing what a killed run
	// left in a cache, for example.
	Before []func(ctx context.Context)
	// After runs, in order, once the steps have finished (not for
	// check-only runs): pruning a cache, for example. It sees the report.
	// Hooks find the apply's logger with zerolog.Ctx.
	After []func(ctx context.Context, rep *Report)

	// Trace, when set, records the apply's phases, steps, prefetches and
	// transfers (apply --trace).
	Trace *Tracer

	// sleep waits between attempts; tests replace it to observe backoff.
	sleep func(ctx context.Context, d time.Duration) error
}

// ErrInterrupted is returned by Apply and Preflight when their context was
// cancelled from outside (for example by SIGINT); the report holds the
// partial result.
var ErrInterrupted = errors.New("run interrupted")

// ErrPreflightFailed is returned by Apply when preflight checks failed; the
// report's Preflight holds them, and nothing was changed.
var ErrPreflightFailed = errors.New("preflight failed")

// UnknownTargetError says a target names no step of the plan.
type UnknownTargetError struct {
	Target string
	Steps  []string // for suggestions
}

func (e *UnknownTargetError) Error() string {
	return fmt.Sprintf("no step %q in the plan%s", e.Target, suggest(e.Target, e.Steps))
}

// Apply is the one owner of an apply (and of a check-only run): it locks
// the machines the selected steps change, checks every step once, runs the
// preflight checks of the steps that need a change, runs the steps (each as
// soon as its needs succeeded, within the concurrency budget) and then the
// After hooks. Each step's Check runs once per apply; its result serves
// preflight, prefetch and the step's first attempt.
//
// It always returns a report; the error is ErrInterrupted when ctx was
// cancelled, ErrPreflightFailed, or what kept the apply from starting (an
// *UnknownTargetError, a *LockedError). Step failures are in the report only.
func Apply(ctx context.Context, g *Graph, opts ApplyOptions) (*Report, error) {
	p := g.plan
	opts = opts.withDefaults(p)
	rep := &Report{Plan: p.Name, File: p.File, CheckOnly: opts.CheckOnly, Started: time.Now()}
	ids, err := g.Select(opts.Targets)
	if err != nil {
		rep.Status, rep.Error = OutcomeError, err.Error()
		return rep, err
	}
	s := newScheduler(g, opts, ids)
	ctx = budget.With(ctx, s.budget)
	if opts.Trace != nil {
		opts.Trace.addTracks(ids)
		defer s.endPhases()
	}
	if !opts.CheckOnly {
		release, err := s.lock(ctx)
		if err != nil {
			if errors.Is(err, ErrInterrupted) {
				return s.report(ctx, rep, ""), err
			}
			rep.Status, rep.Error = OutcomeError, err.Error()
			return rep, err
		}
		defer release()
		s.phase("before", "running the before-run hooks")
		for _, h := range opts.Before {
			h(opts.Logger.WithContext(ctx))
		}
	}
	s.phase("check", "checking every step")
	s.checkAll(ctx)
	if err := s.preflight(ctx, rep); err != nil {
		return s.report(ctx, rep, "not started: preflight failed"), err
	}
	if ctx.Err() != nil {
		return s.report(ctx, rep, ""), ErrInterrupted
	}
	s.phase("run", "running the steps")
	s.run(ctx)
	s.report(ctx, rep, "")
	if !opts.CheckOnly {
		s.phase("after", "running the after-run hooks")
		for _, h := range opts.After {
			h(opts.Logger.WithContext(ctx), rep)
		}
	}
	if ctx.Err() != nil {
		rep.Status = OutcomeInterrupted
		return rep, ErrInterrupted
	}
	return rep, nil
}

func (o ApplyOptions) withDefaults(p *Plan) ApplyOptions {
	if o.Parallelism <= 0 {
		o.Parallelism = p.Parallelism
	}
	if o.Parallelism <= 0 {
		o.Parallelism = defaultParallelism
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = p.FailurePolicy
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = FailFast
	}
	if o.sleep == nil {
		o.sleep = retry.Sleep
	}
	if o.LockDir == "" {
		o.LockDir = defaultLockDir()
	}
	return o
}

func (s *scheduler) phase(name, msg string) {
	s.opts.Logger.Debug().Str("phase", name).Msg(msg)
	if s.opts.Trace != nil {
		s.endPhases()
		s.endPhase = s.opts.Trace.Begin(applyTrack, name, nil)
	}
}

// endPhases ends the trace span of the current phase, if any.
func (s *scheduler) endPhases() {
	if s.endPhase != nil {
		s.endPhase(nil)
		s.endPhase = nil
	}
}

// lock takes the locks of the machines the selected steps change. When
// ctx is cancelled meanwhile it returns ErrInterrupted, holding nothing.
func (s *scheduler) lock(ctx context.Context) (func(), error) {
	s.phase("lock", "locking the machines the plan changes")
	release, err := acquireLocks(ctx, s.opts.Logger, s.p, s.ids, s.opts.LockDir, s.opts.LockWait)
	if ctx.Err() != nil {
		if err == nil {
			release()
		}
		return nil, ErrInterrupted
	}
	return release, err
}

// preflight runs the preflight checks of the steps that need a change,
// when asked to, and returns ErrPreflightFailed when they failed. An
// interruption is left to the caller.
func (s *scheduler) preflight(ctx context.Context, rep *Report) error {
	if s.opts.Preflight == nil || s.opts.CheckOnly || ctx.Err() != nil {
		return nil
	}
	s.phase("preflight", "running the preflight checks of the steps that need a change")
	pre, err := runPreflight(ctx, s.budget, s.changing(), *s.opts.Preflight)
	rep.Preflight = pre
	switch {
	case err != nil: // interrupted: the caller reports it
	case pre.Status != OutcomeOK:
		return ErrPreflightFailed
	default:
		logPreflight(s.opts.Logger, pre)
	}
	return nil
}

func logPreflight(log zerolog.Logger, pre *PreflightReport) {
	for _, c := range pre.Checks {
		if c.Severity != SeverityOK {
			log.Warn().Str("check", c.Name).Str("target", c.Target).Bool("ignored", c.Ignored).Msg(c.Message)
		}
	}
	log.Info().Int("ok", pre.Summary.OK).Int("warnings", pre.Summary.Warnings).Msg("preflight passed")
}

// report fills rep from the results; steps that never ran get why.
func (s *scheduler) report(ctx context.Context, rep *Report, why string) *Report {
	rep.Status = OutcomeOK
	rep.Steps = nil
	for _, id := range s.ids {
		r := s.results[id]
		if r == nil {
			r = s.notStarted(id, ctx.Err() != nil, why)
			s.results[id] = r
		}
		if !r.Status.succeeded() {
			rep.Status = OutcomeFailed
		}
		rep.Steps = append(rep.Steps, *r)
	}
	switch {
	case ctx.Err() != nil:
		rep.Status = OutcomeInterrupted
	case why != "":
		rep.Status = OutcomePreflightFailed
	}
	rep.Duration = Millis(time.Since(rep.Started))
	if !s.opts.CheckOnly { // a plan's checks run all at once: no path to speak of
		rep.CriticalPath = criticalPath(s.p, rep.Steps, time.Duration(rep.Duration))
	}
	return rep
}

// notStarted explains why a step never ran: a need did not succeed
// (blocked), or the run stopped first (cancelled).
func (s *scheduler) notStarted(id string, interrupted bool, why string) *StepResult {
	st := s.p.byID[id]
	r := &StepResult{ID: id, Type: st.Type, Status: StatusCancelled}
	for _, n := range st.Needs {
		if nr := s.results[n]; nr != nil && !nr.Status.succeeded() {
			r.Status = StatusBlocked
			r.Message = fmt.Sprintf("needs %s, which %s", n, nr.Status.describe())
			return r
		}
	}
	switch {
	case interrupted:
		r.Message = "not started: interrupted"
	case why != "":
		r.Message = why
	default:
		r.Message = "not started: another step failed (fail-fast)"
	}
	return r
}

func (s Status) describe() string {
	switch s {
	case StatusFailed:
		return "failed"
	case StatusCancelled:
		return "was cancelled"
	case StatusBlocked:
		return "was blocked"
	}
	return string(s)
}
