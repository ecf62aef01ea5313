package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Status is what happened to one step in a run.
type Status string

const (
	StatusChanged     Status = "changed"      // applied
	StatusUnchanged   Status = "unchanged"    // already up to date
	StatusWouldChange Status = "would-change" // check-only run: Apply would change something
	StatusFailed      Status = "failed"
	StatusCancelled   Status = "cancelled" // stopped or never started because the run was cancelled
	StatusBlocked     Status = "blocked"   // a need failed, was cancelled or was blocked
)

func (s Status) succeeded() bool {
	return s == StatusChanged || s == StatusUnchanged || s == StatusWouldChange
}

// StepResult is the outcome of one step.
type StepResult struct {
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	Status   Status        `json:"status"`
	Message  string        `json:"message,omitempty"`
	Error    string        `json:"error,omitempty"`
	Attempts int           `json:"attempts"`
	Started  time.Time     `json:"started,omitzero"`
	Duration time.Duration `json:"durationNs"`
}

// Report is the outcome of a run, step by step in topological order.
type Report struct {
	Plan      string        `json:"plan"`
	File      string        `json:"file"`
	CheckOnly bool          `json:"checkOnly"`
	Status    string        `json:"status"` // ok, failed, interrupted
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"durationNs"`
	Steps     []StepResult  `json:"steps"`
}

// Count returns how many steps ended with status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, st := range r.Steps {
		if st.Status == s {
			n++
		}
	}
	return n
}

// Failed reports whether any step failed, was blocked or was cancelled.
func (r *Report) Failed() bool { return r.Status != "ok" }

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

	// sleep waits between attempts; tests replace it to observe backoff.
	sleep func(ctx context.Context, d time.Duration) error
}

// ErrInterrupted is returned by Run when its context was cancelled from
// outside (for example by SIGINT); the report holds the partial result.
var ErrInterrupted = errors.New("run interrupted")

// Run executes the plan's steps: each starts as soon as all its needs have
// succeeded, at most Parallelism at once. It always returns a report; the
// error is ErrInterrupted when ctx was cancelled, and nil otherwise (step
// failures are in the report).
func Run(ctx context.Context, p *Plan, g *Graph, opts RunOptions) (*Report, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = p.Parallelism
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = DefaultParallelism
	}
	if opts.FailurePolicy == "" {
		opts.FailurePolicy = p.FailurePolicy
	}
	if opts.FailurePolicy == "" {
		opts.FailurePolicy = FailFast
	}
	if opts.sleep == nil {
		opts.sleep = sleepCtx
	}
	ids, err := g.Select(opts.Targets)
	if err != nil {
		return nil, err
	}
	if !opts.CheckOnly {
		if opts.LockDir == "" {
			opts.LockDir = DefaultLockDir()
		}
		release, err := acquireLocks(p, ids, opts.LockDir, opts.LockWait)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	s := &scheduler{p: p, g: g, opts: opts, results: map[string]*StepResult{}}
	return s.run(ctx, ids)
}

type scheduler struct {
	p       *Plan
	g       *Graph
	opts    RunOptions
	results map[string]*StepResult
	// prefetched[id] is closed when the step's prefetch has finished.
	prefetched map[string]chan struct{}
}

// startPrefetches begins the prefetch of every selected step that offers
// one and needs a change.
func (s *scheduler) startPrefetches(ctx context.Context, ids []string) {
	s.prefetched = map[string]chan struct{}{}
	if s.opts.CheckOnly {
		return
	}
	sem := make(chan struct{}, s.opts.Parallelism)
	for _, id := range ids {
		st := s.p.byID[id]
		pf, ok := st.Impl.(Prefetcher)
		if !ok {
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
			log := s.opts.Logger.With().Str("step", id).Str("type", st.Type).Logger()
			pctx := log.WithContext(ctx)
			if s.opts.Progress != nil {
				pctx = WithProgress(pctx, s.opts.Progress)
			}
			defer func() {
				if p := recover(); p != nil {
					log.Debug().Interface("panic", p).Msg("prefetch panicked; apply will retry")
				}
			}()
			if ch, err := st.Impl.Check(pctx); err != nil || !ch.Needed {
				return
			}
			start := time.Now()
			if err := pf.Prefetch(pctx); err != nil {
				log.Debug().Err(err).Msg("prefetch failed; apply will retry")
				return
			}
			log.Debug().Dur("duration", time.Since(start)).Msg("prefetched")
		}()
	}
}

func (s *scheduler) run(parent context.Context, ids []string) (*Report, error) {
	started := time.Now()
	runCtx, cancel := context.WithCancel(parent)
	defer cancel()

	s.startPrefetches(runCtx, ids)
	selected := make(map[string]bool, len(ids))
	for _, id := range ids {
		selected[id] = true
	}
	pending := make(map[string]int, len(ids))
	ready := &idHeap{index: s.g.index}
	for _, id := range ids {
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
			go func() { done <- s.execute(runCtx, s.p.byID[id]) }()
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
	rep := &Report{Plan: s.p.Name, File: s.p.File, CheckOnly: s.opts.CheckOnly, Started: started, Status: "ok"}
	for _, id := range ids {
		r := s.results[id]
		if r == nil {
			r = s.notStarted(id, parent.Err() != nil)
			s.results[id] = r
		}
		if !r.Status.succeeded() {
			rep.Status = "failed"
		}
		rep.Steps = append(rep.Steps, *r)
	}
	rep.Duration = time.Since(started)
	if parent.Err() != nil {
		rep.Status = "interrupted"
		return rep, ErrInterrupted
	}
	return rep, nil
}

// notStarted explains why a step never ran: a need did not succeed (blocked),
// or the run stopped first (cancelled).
func (s *scheduler) notStarted(id string, interrupted bool) *StepResult {
	st := s.p.byID[id]
	r := &StepResult{ID: id, Type: st.Type}
	for _, n := range st.Needs {
		if nr := s.results[n]; nr != nil && !nr.Status.succeeded() {
			r.Status = StatusBlocked
			r.Message = fmt.Sprintf("needs %s, which %s", n, describe(nr.Status))
			return r
		}
	}
	r.Status = StatusCancelled
	if interrupted {
		r.Message = "not started: interrupted"
	} else {
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

// execute runs one step with its retries and returns its result.
func (s *scheduler) execute(runCtx context.Context, st *PlanStep) *StepResult {
	log := s.opts.Logger.With().Str("step", st.ID).Str("type", st.Type).Logger()
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
		ch, err = s.attempt(runCtx, st, log)
		if err == nil || runCtx.Err() != nil || IsPermanent(err) || attempt >= st.Retry.Attempts {
			break
		}
		wait := backoff(attempt, st.Retry, rand.Float64)
		log.Warn().Err(err).Int("attempt", attempt).Dur("retryIn", wait).Msg("step attempt failed, retrying")
		if s.opts.sleep(runCtx, wait) != nil {
			break
		}
	}
	r.Duration = time.Since(r.Started)
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
	ev = ev.Str("status", string(r.Status)).Dur("duration", r.Duration)
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

// attempt runs Check and, when needed and allowed, Apply, under the step's
// timeout. A panic becomes an error.
func (s *scheduler) attempt(runCtx context.Context, st *PlanStep, log zerolog.Logger) (ch Change, err error) {
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
	ch, err = st.Impl.Check(ctx)
	if err != nil {
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

// summary is "3 changed, 1 unchanged" for the statuses present.
func (r *Report) Summary() string {
	var parts []string
	for _, s := range []Status{StatusChanged, StatusWouldChange, StatusUnchanged, StatusFailed, StatusBlocked, StatusCancelled} {
		if n := r.Count(s); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return fmt.Sprintf("%d steps: %s in %s", len(r.Steps), strings.Join(parts, ", "), r.Duration.Round(time.Millisecond))
}
