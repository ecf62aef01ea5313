package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// busy counts the pieces of work running at once.
type busy struct {
	mu         sync.Mutex
	now, peak  int
	leafPeak   int
	leavesNow  int
	prefetched int
}

func (b *busy) enter() func() {
	b.mu.Lock()
	b.now++
	b.peak = max(b.peak, b.now)
	b.mu.Unlock()
	return func() { b.mu.Lock(); b.now--; b.mu.Unlock() }
}

// worker is a step whose prefetch, apply and the leaves inside its apply
// are all observed.
type worker struct {
	b      *busy
	leaves int
}

type workerParams struct {
	Leaves int `yaml:"leaves"`
}

func (w *worker) Check(context.Context) (engine.Change, error) {
	return engine.NeedsChange("always"), nil
}

func (w *worker) Prefetch(context.Context) error {
	defer w.b.enter()()
	time.Sleep(5 * time.Millisecond)
	w.b.mu.Lock()
	w.b.prefetched++
	w.b.mu.Unlock()
	return nil
}

func (w *worker) Apply(ctx context.Context) error {
	defer w.b.enter()()
	time.Sleep(5 * time.Millisecond)
	return budget.Each(ctx, w.leaves, func(context.Context, int) error {
		w.b.mu.Lock()
		w.b.leavesNow++
		w.b.leafPeak = max(w.b.leafPeak, w.b.leavesNow)
		w.b.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		w.b.mu.Lock()
		w.b.leavesNow--
		w.b.mu.Unlock()
		return nil
	})
}

func workerRegistry(b *busy) *engine.Registry {
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "worker"}, workerParams{}, func(_ string, p *workerParams) (engine.Step, error) {
		return &worker{b: b, leaves: p.Leaves}, nil
	})
	return reg
}

// TestApplyStaysWithinOneBudget: prefetches and steps draw from the same
// slots, so with parallelism 2 no more than two of them run at once (with
// a budget each they would reach four).
func TestApplyStaysWithinOneBudget(t *testing.T) {
	t.Parallel()
	b := &busy{}
	_, g := loadString(t, workerRegistry(b), header+`steps:
  a: {type: worker}
  b: {type: worker}
  c: {type: worker}
  d: {type: worker}
  e: {type: worker, needs: [a, b, c, d]}
`, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Parallelism: 2, Logger: zerolog.Nop(), LockDir: t.TempDir()})
	if err != nil || rep.Failed() {
		t.Fatalf("Apply: %v, %+v", err, rep)
	}
	if b.prefetched != 5 {
		t.Fatalf("%d prefetches ran; want 5", b.prefetched)
	}
	if b.peak > 2 {
		t.Fatalf("%d prefetches and steps ran at once; the budget is 2", b.peak)
	}
}

// TestLeafWorkDrawsFromTheBudget: the work inside a step uses the spare
// slots of the apply's budget: never more than it, and more than one when
// slots are free.
func TestLeafWorkDrawsFromTheBudget(t *testing.T) {
	t.Parallel()
	b := &busy{}
	_, g := loadString(t, workerRegistry(b), header+"steps:\n  a: {type: worker, with: {leaves: 40}}\n", nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Parallelism: 3, Logger: zerolog.Nop(), LockDir: t.TempDir()})
	if err != nil || rep.Failed() {
		t.Fatalf("Apply: %v, %+v", err, rep)
	}
	if b.leafPeak > 3 || b.leafPeak < 2 {
		t.Fatalf("%d leaves ran at once; want 2 or 3 with a budget of 3", b.leafPeak)
	}
}

// inner is a step whose Apply retries its own work the way a download
// does: under the policy the plan handed down, or its own default of 4.
type inner struct {
	mu     sync.Mutex
	calls  int
	policy retry.Policy
}

func (s *inner) Check(context.Context) (engine.Change, error) {
	return engine.NeedsChange("always"), nil
}
func (s *inner) Apply(ctx context.Context) error {
	p := retry.PolicyFrom(ctx, retry.Policy{Attempts: 4})
	s.mu.Lock()
	s.policy = p
	s.mu.Unlock()
	_, err := retry.Do(ctx, p, retry.Hooks{Sleep: func(context.Context, time.Duration) error { return nil }}, func(context.Context, int) error {
		s.mu.Lock()
		s.calls++
		s.mu.Unlock()
		return errors.New("connection reset by peer")
	})
	return err
}

// TestRetriesDoNotMultiply: a step's retry policy set in the plan is the
// policy of the work inside the step, and a step whose inner work used up
// its attempts is not attempted again: 3 attempts in all, not 3 x 3. Without
// a policy in the plan the inner work keeps its own default.
func TestRetriesDoNotMultiply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, retry     string
		calls, attempts int
	}{
		{"plan sets 3", "retry: {attempts: 3, delay: 1ms, maxDelay: 1ms}", 3, 1},
		{"plan default", "", 4, 1},
	} {
		s := &inner{}
		reg := engine.NewRegistry()
		engine.Register(reg, engine.StepType{Name: "inner"}, struct{}{}, func(string, *struct{}) (engine.Step, error) { return s, nil })
		_, g := loadString(t, reg, header+"steps:\n  a: {type: inner, "+tc.retry+"}\n", nil)
		rep, _ := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
		r := result(t, rep, "a")
		if s.calls != tc.calls || r.Attempts != tc.attempts || r.Status != engine.StatusFailed {
			t.Errorf("%s: inner work ran %d times over %d step attempts (%s); want %d over %d, failed",
				tc.name, s.calls, r.Attempts, r.Status, tc.calls, tc.attempts)
		}
	}
}
