package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// RunOptions tune a run; zero values fall back to the plan's settings.
type RunOptions struct {
	Parallelism   int
	FailurePolicy FailurePolicy
	Targets       []string // run only these and what they need
	CheckOnly     bool     // run only the up-to-date checks (rootfsctl plan)
	Logger        zerolog.Logger
	Progress      Progress      // where steps report transfer progress; nil discards
	LockWait      time.Duration // how long to wait for another run's lock; 0 refuses at once
	LockDir       string        // where lock files live; default DefaultLockDir()
	// Preflight, when set, runs the preflight checks of the steps that need
	// a change before anything is changed; a failure ends the run.
	Preflight *PreflightOptions
	// After runs, in order, once the steps have finished (not for
	// check-only runs): pruning a cache, for example. It sees the report.
	After []func(ctx context.Context, rep *Report)

	// sleep waits between attempts; tests replace it to observe backoff.
	sleep func(ctx context.Context, d time.Duration) error
}

// ErrInterrupted is returned by Run when its context was cancelled from
// outside (for example by SIGINT); the report holds the partial result.
var ErrInterrupted = errors.New("run interrupted")

// ErrPreflightFailed is returned by Run when preflight checks failed; the
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

// Run is the one owner of an apply (and of a check-only run): it locks
// the machines the selected steps change, checks every step once, runs the
// preflight checks of the steps that need a change, runs the steps (each
// as soon as its needs succeeded, at most Parallelism at once) and then the
// After hooks. It always returns a report; the error is ErrInterrupted when
// ctx was cancelled, ErrPreflightFailed, or what kept the run from
// starting (an *UnknownTargetError, a *LockedError). Step failures are in
// the report only.
func Run(ctx context.Context, p *Plan, g *Graph, opts RunOptions) (*Report, error) {
	opts = opts.withDefaults(p)
	rep := &Report{Plan: p.Name, File: p.File, CheckOnly: opts.CheckOnly, Started: time.Now()}
	ids, err := g.Select(opts.Targets)
	if err != nil {
		rep.Status, rep.Error = OutcomeError, err.Error()
		return rep, err
	}
	s := &scheduler{p: p, g: g, opts: opts, results: map[string]*StepResult{}, ids: ids}
	log := opts.Logger
	if !opts.CheckOnly {
		log.Debug().Str("phase", "lock").Msg("locking the machines the plan changes")
		release, err := acquireLocks(ctx, log, p, ids, opts.LockDir, opts.LockWait)
		if ctx.Err() != nil {
			if err == nil {
				release()
			}
			return s.report(ctx, rep, ""), ErrInterrupted
		}
		if err != nil {
			rep.Status, rep.Error = OutcomeError, err.Error()
			return rep, err
		}
		defer release()
	}
	log.Debug().Str("phase", "check").Msg("checking every step")
	s.checkAll(ctx)
	if opts.Preflight != nil && !opts.CheckOnly && ctx.Err() == nil {
		log.Debug().Str("phase", "preflight").Msg("running the preflight checks of the steps that need a change")
		pre, err := preflight(ctx, s.changing(), *opts.Preflight)
		rep.Preflight = pre
		switch {
		case err != nil: // interrupted: reported below
		case pre.Status != OutcomeOK:
			return s.report(ctx, rep, "not started: preflight failed"), ErrPreflightFailed
		default:
			logPreflight(opts.Logger, pre)
		}
	}
	if ctx.Err() != nil {
		return s.report(ctx, rep, ""), ErrInterrupted
	}
	log.Debug().Str("phase", "run").Msg("running the steps")
	s.run(ctx)
	s.report(ctx, rep, "")
	if !opts.CheckOnly {
		log.Debug().Str("phase", "after").Msg("running the after-run hooks")
		for _, h := range opts.After {
			h(ctx, rep)
		}
	}
	if ctx.Err() != nil {
		rep.Status = OutcomeInterrupted
		return rep, ErrInterrupted
	}
	return rep, nil
}

func (o RunOptions) withDefaults(p *Plan) RunOptions {
	if o.Parallelism <= 0 {
		o.Parallelism = p.Parallelism
	}
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = p.FailurePolicy
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = FailFast
	}
	if o.sleep == nil {
		o.sleep = sleepCtx
	}
	if o.LockDir == "" {
		o.LockDir = DefaultLockDir()
	}
	return o
}

func logPreflight(log zerolog.Logger, pre *PreflightReport) {
	if pre == nil {
		return
	}
	for _, c := range pre.Checks {
		if c.Severity != SeverityOK {
			log.Warn().Str("check", c.Name).Str("target", c.Target).Bool("ignored", c.Ignored).Msg(c.Message)
		}
	}
	log.Info().Int("ok", pre.Summary.OK).Int("warnings", pre.Summary.Warnings).Msg("preflight passed")
}

// checked is a step's Check result from the start of the run.
type checked struct {
	ch  Change
	err error
}

type scheduler struct {
	p       *Plan
	g       *Graph
	opts    RunOptions
	ids     []string
	results map[string]*StepResult
	// checks holds each selected step's Check result, taken once before
	// anything runs; preflight, prefetch and the run all use it.
	checks map[string]checked
	// prefetched[id] is closed when the step's prefetch has finished.
	prefetched map[string]chan struct{}
}

// checkAll runs every selected step's Check once, concurrently, before
// anything changes. A check that takes longer than the step's timeout fails.
func (s *scheduler) checkAll(ctx context.Context) {
	s.checks = make(map[string]checked, len(s.ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.opts.Parallelism)
	for _, id := range s.ids {
		st := s.p.byID[id]
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			cctx := s.stepLogger(st).WithContext(ctx)
			if st.Timeout > 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(cctx, st.Timeout)
				defer cancel()
			}
			c := checked{}
			func() {
				defer func() {
					if p := recover(); p != nil {
						c.err = Permanent(fmt.Errorf("panic: %v", p))
					}
				}()
				c.ch, c.err = st.Impl.Check(cctx)
			}()
			mu.Lock()
			s.checks[id] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// changing lists the selected steps whose Check says they need a change
// (or could not tell).
func (s *scheduler) changing() []*PlanStep {
	var out []*PlanStep
	for _, id := range s.ids {
		if c, ok := s.checks[id]; !ok || c.err != nil || c.ch.Needed {
			out = append(out, s.p.byID[id])
		}
	}
	return out
}

func (s *scheduler) stepLogger(st *PlanStep) zerolog.Logger {
	return s.opts.Logger.With().Str("step", st.ID).Str("type", st.Type).Logger()
}

// startPrefetches begins the prefetch of every selected step that offers
// one and needs a change, at most Parallelism at a time.
func (s *scheduler) startPrefetches(ctx context.Context) {
	s.prefetched = map[string]chan struct{}{}
	if s.opts.CheckOnly {
		return
	}
	sem := make(chan struct{}, s.opts.Parallelism)
	for _, id := range s.ids {
		st := s.p.byID[id]
		pf, ok := st.Impl.(Prefetcher)
		if c := s.checks[id]; !ok || c.err != nil || !c.ch.Needed {
			continue
		}
		done := make(chan struct{})
		s.prefetched[id] = done
		go func() {
			defer close(done)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			log := s.stepLogger(st)
			pctx := log.WithContext(ctx)
			if s.opts.Progress != nil {
				pctx = WithProgress(pctx, s.opts.Progress)
			}
			defer func() {
				if p := recover(); p != nil {
					log.Debug().Interface("panic", p).Msg("prefetch panicked; apply will retry")
				}
			}()
			start := time.Now()
			if err := pf.Prefetch(pctx); err != nil {
				log.Debug().Err(err).Msg("prefetch failed; apply will retry")
				return
			}
			log.Debug().Dur("durationMs", time.Since(start)).Msg("prefetched")
		}()
	}
}

func (s *scheduler) run(parent context.Context) {
	ids := make(map[string]bool, len(s.p.Steps))
	for _, st := range s.p.Steps {
		ids[st.ID] = true
	}
	runCtx, cancel := context.WithCancel(WithStepIDs(parent, ids))
	defer cancel()

	s.startPrefetches(runCtx)
	selected := make(map[string]bool, len(s.ids))
	for _, id := range s.ids {
		selected[id] = true
	}
	pending := make(map[string]int, len(s.ids))
	ready := &idHeap{index: s.g.index}
	for _, id := range s.ids {
		pending[id] = len(s.p.byID[id].Needs)
		if pending[id] == 0 {
			heap.Push(ready, id)
		}
	}
	done := make(chan *StepResult)
	running := 0
	stopping := false
	for {
		// Nothing new starts once the run is cancelled, whether by fail-fast
		// or from outside (a step that succeeds meanwhile frees no one).
		stopping = stopping || runCtx.Err() != nil
		for !stopping && running < s.opts.Parallelism && ready.Len() > 0 {
			id := heap.Pop(ready).(string)
			running++
			st := s.p.byID[id]
			first := s.firstCheck(st)
			go func() { done <- s.execute(runCtx, st, first) }()
		}
		if running == 0 {
			break
		}
		r := <-done
		running--
		s.results[r.ID] = r
		if r.Status.succeeded() {
			for _, c := range s.g.children[r.ID] {
				if selected[c] {
					if pending[c]--; pending[c] == 0 {
						heap.Push(ready, c)
					}
				}
			}
			continue
		}
		if r.Status == StatusFailed && s.opts.FailurePolicy == FailFast {
			cancel()
		}
	}

	// Prefetches of steps that never ran may still be going: stop them and
	// wait, so none outlives the run (a killed download must remove its
	// temporary file before the process exits).
	cancel()
	for _, done := range s.prefetched {
		<-done
	}
}

// firstCheck is the check result the step's first attempt may use: the
// one taken before the run, unless it said "up to date" and a need has
// changed the system since (then the step checks again).
func (s *scheduler) firstCheck(st *PlanStep) *checked {
	c, ok := s.checks[st.ID]
	if !ok || c.err != nil {
		return nil
	}
	if !c.ch.Needed {
		for _, n := range st.Needs {
			if r := s.results[n]; r != nil && r.Status == StatusChanged {
				return nil
			}
		}
	}
	return &c
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
			r.Message = fmt.Sprintf("needs %s, which %s", n, describe(nr.Status))
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

func describe(s Status) string {
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

// execute runs one step with its retries and returns its result. first,
// when set, is the check result the first attempt uses instead of checking.
func (s *scheduler) execute(runCtx context.Context, st *PlanStep, first *checked) *StepResult {
	log := s.stepLogger(st)
	r := &StepResult{ID: st.ID, Type: st.Type, Started: time.Now()}
	log.Debug().Msg("step started")
	if done := s.prefetched[st.ID]; done != nil {
		select {
		case <-done:
		case <-runCtx.Done():
		}
	}
	var err error
	var ch Change
	for attempt := 1; ; attempt++ {
		r.Attempts = attempt
		ch, err = s.attempt(runCtx, st, log, first)
		first = nil
		if err == nil || runCtx.Err() != nil || IsPermanent(err) || attempt >= st.Retry.Attempts {
			break
		}
		wait := backoff(attempt, st.Retry, rand.Float64)
		log.Warn().Err(err).Int("attempt", attempt).Dur("retryInMs", wait).Msg("step attempt failed, retrying")
		if s.opts.sleep(runCtx, wait) != nil {
			break
		}
	}
	r.Duration = Millis(time.Since(r.Started))
	switch {
	case err == nil && s.opts.CheckOnly && ch.Needed:
		r.Status, r.Message = StatusWouldChange, ch.Reason
	case err == nil && ch.Needed:
		r.Status, r.Message = StatusChanged, ch.Reason
	case err == nil:
		r.Status, r.Message = StatusUnchanged, ch.Reason
	case runCtx.Err() != nil:
		r.Status, r.Error = StatusCancelled, err.Error()
		r.Message = "cancelled while running"
	default:
		r.Status, r.Error = StatusFailed, err.Error()
	}
	ev := log.Info()
	if r.Status == StatusFailed {
		ev = log.Error()
	}
	ev = ev.Str("status", string(r.Status)).Dur("durationMs", time.Duration(r.Duration))
	if r.Message != "" {
		ev = ev.Str("reason", r.Message)
	}
	if r.Error != "" {
		ev = ev.Str("error", r.Error)
	}
	if r.Attempts > 1 {
		ev = ev.Int("attempts", r.Attempts)
	}
	ev.Msg("step finished")
	return r
}

// attempt runs Check (unless given its result) and, when needed and
// allowed, Apply, under the step's timeout. A panic becomes an error.
func (s *scheduler) attempt(runCtx context.Context, st *PlanStep, log zerolog.Logger, first *checked) (ch Change, err error) {
	ctx := runCtx
	if st.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(runCtx, st.Timeout)
		defer cancel()
	}
	ctx = log.WithContext(ctx)
	if s.opts.Progress != nil {
		ctx = WithProgress(ctx, s.opts.Progress)
	}
	defer func() {
		if p := recover(); p != nil {
			log.Debug().Str("stack", string(debug.Stack())).Msg("step panicked")
			err = Permanent(fmt.Errorf("panic: %v", p))
		}
		if err != nil && st.Timeout > 0 && runCtx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s: %w", st.Timeout, err)
		}
	}()
	if first != nil {
		ch = first.ch
	} else if ch, err = st.Impl.Check(ctx); err != nil {
		return ch, fmt.Errorf("check: %w", err)
	}
	if !ch.Needed || s.opts.CheckOnly {
		if t, ok := st.Impl.(Tidier); ok && !s.opts.CheckOnly {
			if err := t.Tidy(ctx); err != nil {
				log.Warn().Err(err).Msg("could not remove leftovers of an interrupted run")
			}
		}
		return ch, nil
	}
	log.Info().Str("reason", ch.Reason).Msg("applying")
	if err := st.Impl.Apply(ctx); err != nil {
		return ch, err
	}
	return ch, nil
}

// backoff is the wait after the given failed attempt (1-based): the delay
// doubled per attempt, capped at MaxDelay, then drawn uniformly from its
// upper half so that concurrent retries spread out ("equal jitter").
func backoff(attempt int, r Retry, rnd func() float64) time.Duration {
	d := time.Duration(r.Delay)
	for i := 1; i < attempt && d < time.Duration(r.MaxDelay); i++ {
		d *= 2
	}
	d = min(d, time.Duration(r.MaxDelay))
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
