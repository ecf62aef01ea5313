package engine

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/retry"
	"github.com/rootfsctl/rootfsctl/internal/trace"
)

// checked is a step's Check result from the start of the apply.
type checked struct {
	ch  Change
	err error
}

// scheduler runs one apply's selected steps. Every goroutine it starts
// holds a slot of its budget.
type scheduler struct {
	p       *Plan
	g       *Graph
	opts    ApplyOptions
	ids     []string
	budget  *budget.Budget
	results map[string]*StepResult
	// checks holds each selected step's Check result, taken once before
	// anything runs; preflight, prefetch and the run all use it.
	checks map[string]checked
	// spent holds, by step id, a prefetch failure that ends the step: a
	// transfer that used up its attempts, or one that cannot succeed. The
	// step is not run again (its attempts would multiply with the
	// transfer's). Written before the prefetch's id is sent on, read after.
	spent sync.Map
	// endPhase ends the trace span of the apply's current phase.
	endPhase func(map[string]any)
}

func newScheduler(g *Graph, opts ApplyOptions, ids []string) *scheduler {
	return &scheduler{p: g.plan, g: g, opts: opts, ids: ids, budget: budget.New(opts.Parallelism),
		results: map[string]*StepResult{}}
}

// checkAll runs every selected step's Check once, concurrently, before
// anything changes. A check that takes longer than the step's timeout fails.
func (s *scheduler) checkAll(ctx context.Context) {
	results := make([]checked, len(s.ids))
	ran := make([]bool, len(s.ids))
	s.budget.Run(ctx, len(s.ids), func(ctx context.Context, i int) error {
		st := s.p.byID[s.ids[i]]
		cctx := s.stepContext(ctx, st)
		if st.Timeout > 0 {
			var cancel context.CancelFunc
			cctx, cancel = context.WithTimeout(cctx, st.Timeout)
			defer cancel()
		}
		end := trace.Span(cctx, "check")
		results[i], ran[i] = checkOnce(cctx, st), true
		end()
		return nil
	})
	s.checks = make(map[string]checked, len(s.ids))
	for i, id := range s.ids {
		if ran[i] {
			s.checks[id] = results[i]
		}
	}
}

func checkOnce(ctx context.Context, st *PlanStep) (c checked) {
	defer func() {
		if p := recover(); p != nil {
			c.err = Permanent(fmt.Errorf("panic: %v", p))
		}
	}()
	c.ch, c.err = st.Impl.Check(ctx)
	return c
}

// needsChange reports whether the step's Check said it needs a change (or
// could not tell).
func (s *scheduler) needsChange(id string) bool {
	c, ok := s.checks[id]
	return !ok || c.err != nil || c.ch.Needed
}

// changing lists the selected steps that need a change.
func (s *scheduler) changing() []*PlanStep {
	var out []*PlanStep
	for _, id := range s.ids {
		if s.needsChange(id) {
			out = append(out, s.p.byID[id])
		}
	}
	return out
}

// stepContext is ctx with the step's logger, the progress sink and, when
// the plan sets the step's retry policy, that policy for the work inside
// it (a download retries its transfers under it and is not tried again
// by the step).
func (s *scheduler) stepContext(ctx context.Context, st *PlanStep) context.Context {
	ctx = s.stepLogger(st).WithContext(ctx)
	if s.opts.Progress != nil {
		ctx = WithProgress(ctx, s.opts.Progress)
	}
	if s.opts.Trace != nil {
		ctx = withTrace(ctx, s.opts.Trace, st.ID)
		ctx = WithProgress(ctx, tracingProgress{inner: ProgressFrom(ctx), t: s.opts.Trace, step: st.ID})
	}
	if st.retrySet {
		ctx = retry.WithPolicy(ctx, st.Retry.policy())
	}
	return ctx
}

func (s *scheduler) stepLogger(st *PlanStep) zerolog.Logger {
	return s.opts.Logger.With().Str("step", st.ID).Str("type", st.Type).Logger()
}

// queue tracks which selected steps may start: all their needs succeeded
// and their prefetch (if any) has finished.
type queue struct {
	ready    *idHeap
	needs    map[string]int  // needs not yet succeeded
	pending  map[string]bool // prefetch not finished
	parked   map[string]bool // needs met, prefetch not finished
	selected map[string]bool
}

func (s *scheduler) newQueue(pending map[string]bool) *queue {
	q := &queue{ready: &idHeap{index: s.g.index}, needs: map[string]int{}, pending: pending,
		parked: map[string]bool{}, selected: map[string]bool{}}
	for _, id := range s.ids {
		q.selected[id] = true
	}
	for _, id := range s.ids {
		if q.needs[id] = len(s.p.byID[id].Needs); q.needs[id] == 0 {
			q.needsMet(id)
		}
	}
	return q
}

func (q *queue) needsMet(id string) {
	if q.pending[id] {
		q.parked[id] = true
		return
	}
	heap.Push(q.ready, id)
}

func (q *queue) prefetched(id string) {
	delete(q.pending, id)
	if q.parked[id] {
		delete(q.parked, id)
		heap.Push(q.ready, id)
	}
}

func (q *queue) succeeded(children []string) {
	for _, c := range children {
		if q.selected[c] {
			if q.needs[c]--; q.needs[c] == 0 {
				q.needsMet(c)
			}
		}
	}
}

// run starts each step once its needs succeeded and a slot of the budget
// is free, until every step ran, or the apply is cancelled (by fail-fast
// or from outside: then nothing new starts).
func (s *scheduler) run(parent context.Context) {
	runCtx, cancel := context.WithCancel(withStepIDs(parent, s.p.ids()))
	defer cancel()
	pending, prefetched, waitPrefetches := s.startPrefetches(runCtx)
	started := maps.Clone(pending) // the queue empties pending
	q := s.newQueue(pending)
	done := make(chan *StepResult)
	running := 0
	for {
		stopping := runCtx.Err() != nil
		var slot chan<- struct{}
		if !stopping && q.ready.Len() > 0 {
			slot = s.budget.Slots()
		}
		if running == 0 && slot == nil && (stopping || len(q.parked) == 0) {
			break
		}
		select {
		case slot <- struct{}{}:
			st := s.p.byID[heap.Pop(q.ready).(string)]
			first := s.firstCheck(st)
			running++
			go func() { done <- s.execute(runCtx, st, first) }()
		case r := <-done:
			// The slot is freed here, not in the goroutine: no step
			// starts before the loop has seen this one fail.
			s.budget.Release()
			running--
			s.results[r.ID] = r
			switch {
			case r.Status.succeeded():
				q.succeeded(s.g.children[r.ID])
			case r.Status == StatusFailed && s.opts.FailurePolicy == FailFast:
				cancel()
			}
		case id := <-prefetched:
			q.prefetched(id)
		}
	}
	// Prefetches of steps that never ran may still be going: stop them and
	// wait, so none outlives the run (a killed download must remove its
	// temporary file before the process exits).
	cancel()
	waitPrefetches()
	s.release(parent, started)
}

// firstCheck is the check result the step's first attempt uses: the one
// taken before the run (an error too: Check runs once per apply), unless
// it said "up to date" or failed and a need has changed the system since
// (then the step checks again).
func (s *scheduler) firstCheck(st *PlanStep) *checked {
	c, ok := s.checks[st.ID]
	if !ok {
		return nil
	}
	if !c.ch.Needed || c.err != nil {
		for _, n := range st.Needs {
			if r := s.results[n]; r != nil && r.Status == StatusChanged {
				return nil
			}
		}
	}
	return &c
}

// execute runs one step with its retries and returns its result. first,
// when set, is the check result the first attempt uses instead of checking.
func (s *scheduler) execute(runCtx context.Context, st *PlanStep, first *checked) *StepResult {
	log := s.stepLogger(st)
	r := &StepResult{ID: st.ID, Type: st.Type, Started: time.Now()}
	log.Debug().Msg("step started")
	traced := s.traceStep(st.ID, r.Started)
	defer func() { traced(r) }()
	var ch Change
	hooks := retry.Hooks{Sleep: s.opts.sleep, OnRetry: func(attempt int, err error, wait time.Duration) {
		log.Warn().Err(err).Int("attempt", attempt).Dur("retryInMs", wait).Msg("step attempt failed, retrying")
	}}
	if spent, ok := s.spent.Load(st.ID); ok {
		r.Attempts, r.Duration = 1, Millis(time.Since(r.Started))
		s.settle(r, Change{}, spent.(error), false)
		logResult(log, r)
		return r
	}
	var err error
	r.Attempts, err = retry.Do(runCtx, st.Retry.policy(), hooks, func(context.Context, int) error {
		var err error
		ch, err = s.attempt(runCtx, st, first)
		first = nil
		return err
	})
	r.Duration = Millis(time.Since(r.Started))
	s.settle(r, ch, err, runCtx.Err() != nil)
	logResult(log, r)
	return r
}

// traceStep opens the span of the step's whole run on its track; the
// returned function closes it with the step's result.
func (s *scheduler) traceStep(id string, start time.Time) func(r *StepResult) {
	if s.opts.Trace == nil {
		return func(*StepResult) {}
	}
	i, ok := s.opts.Trace.open(stepTrack(id), id, start)
	if !ok {
		return func(*StepResult) {}
	}
	return func(r *StepResult) {
		args := map[string]any{"status": string(r.Status), "attempts": r.Attempts}
		if r.Error != "" {
			args["error"] = r.Error
		} else if r.Message != "" {
			args["reason"] = r.Message
		}
		s.opts.Trace.close(i, r.ID+" ("+string(r.Status)+")", args)
	}
}

// settle sets the result's status from the last attempt.
func (s *scheduler) settle(r *StepResult, ch Change, err error, cancelled bool) {
	switch {
	case err == nil && s.opts.CheckOnly && ch.Needed:
		r.Status, r.Message = StatusWouldChange, ch.Reason
	case err == nil && ch.Needed:
		r.Status, r.Message = StatusChanged, ch.Reason
	case err == nil:
		r.Status, r.Message = StatusUnchanged, ch.Reason
	case cancelled:
		r.Status, r.Error = StatusCancelled, err.Error()
		r.Message = "cancelled while running"
	default:
		r.Status, r.Error = StatusFailed, err.Error()
	}
}

func logResult(log zerolog.Logger, r *StepResult) {
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
}

// attempt runs Check (unless given its result) and, when needed and
// allowed, Apply, under the step's timeout. A panic becomes an error.
func (s *scheduler) attempt(runCtx context.Context, st *PlanStep, first *checked) (ch Change, err error) {
	ctx := runCtx
	if st.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(runCtx, st.Timeout)
		defer cancel()
	}
	ctx = s.stepContext(ctx, st)
	log := zerolog.Ctx(ctx)
	endAttempt := trace.Span(ctx, "attempt")
	defer endAttempt()
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
		if ch = first.ch; first.err != nil {
			return ch, fmt.Errorf("check: %w", first.err)
		}
	} else {
		end := trace.Span(ctx, "check")
		ch, err = st.Impl.Check(ctx)
		end()
		if err != nil {
			return ch, fmt.Errorf("check: %w", err)
		}
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
	defer trace.Span(ctx, "apply")()
	return ch, st.Impl.Apply(ctx)
}
