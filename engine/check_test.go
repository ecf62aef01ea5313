package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rs/zerolog"
)

func loadStringFile(t *testing.T, reg *engine.Registry, file string) (*engine.Plan, *engine.Graph) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return loadString(t, reg, string(src), nil)
}

// countingStep counts its Check calls; it is up to date once its file exists.
type countingStep struct {
	file   string
	checks *sync.Map // file -> *int
	mu     *sync.Mutex
}

func (s *countingStep) bump() {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _ := s.checks.LoadOrStore(s.file, new(int))
	*(v.(*int))++
}

func (s *countingStep) Check(context.Context) (engine.Change, error) {
	s.bump()
	if _, err := os.Stat(s.file); err == nil {
		return engine.UpToDate("exists"), nil
	}
	return engine.NeedsChange("missing"), nil
}

func (s *countingStep) Apply(context.Context) error { return os.WriteFile(s.file, nil, 0o644) }

func (s *countingStep) Prefetch(context.Context) error { return nil }

func (s *countingStep) Preflight() []engine.Check { return nil }

// TestCheckRunsOncePerStepPerApply: preflight, prefetch and the run share
// one Check result per step, on a cold apply and on a warm one.
func TestCheckRunsOncePerStepPerApply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var counts sync.Map
	var mu sync.Mutex
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "count"}, struct{}{}, func(id string, _ *struct{}) (engine.Step, error) {
		return &countingStep{file: filepath.Join(dir, id), checks: &counts, mu: &mu}, nil
	})
	_, g := loadString(t, reg, header+"steps:\n  a: {type: count}\n  b: {type: count, needs: [a]}\n  c: {type: count, needs: [a, b]}\n", nil)
	for _, round := range []string{"cold", "warm"} {
		counts.Clear()
		rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir(),
			Preflight: &engine.PreflightOptions{}})
		if err != nil || rep.Failed() {
			t.Fatalf("%s apply: %v %+v", round, err, rep)
		}
		for _, id := range []string{"a", "b", "c"} {
			v, _ := counts.Load(filepath.Join(dir, id))
			if n, _ := v.(*int); n == nil || *n != 1 {
				t.Errorf("%s apply: step %s checked %v times, want 1", round, id, v)
			}
		}
	}
}

// TestUpToDateStepIsCheckedAgainAfterItsNeedChanged: a check result taken
// before the run no longer holds once a need changed the system.
func TestUpToDateStepIsCheckedAgainAfterItsNeedChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var counts sync.Map
	var mu sync.Mutex
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "count"}, struct{}{}, func(id string, _ *struct{}) (engine.Step, error) {
		return &countingStep{file: filepath.Join(dir, id), checks: &counts, mu: &mu}, nil
	})
	if err := os.WriteFile(filepath.Join(dir, "b"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, g := loadString(t, reg, header+"steps:\n  a: {type: count}\n  b: {type: count, needs: [a]}\n", nil)
	if _, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	v, _ := counts.Load(filepath.Join(dir, "b"))
	if n := *(v.(*int)); n != 2 {
		t.Errorf("b was checked %d times, want 2 (before the run, and again after a changed)", n)
	}
}

// blockingCheck is a preflight check that waits until it is cancelled.
type blockingCheck struct{ started chan struct{} }

func (blockingCheck) Name() string { return "blocking" }

func (c blockingCheck) Run(ctx context.Context) []engine.CheckResult {
	close(c.started)
	<-ctx.Done()
	return []engine.CheckResult{{Name: "blocking", Severity: engine.SeverityError, Message: "network or protocol error"}}
}

type preflightStep struct{ c blockingCheck }

func (preflightStep) Check(context.Context) (engine.Change, error) {
	return engine.NeedsChange("x"), nil
}

func (preflightStep) Apply(context.Context) error { return nil }

func (s preflightStep) Preflight() []engine.Check { return []engine.Check{s.c} }

// TestInterruptDuringPreflight: cancelling while checks run ends the run
// as interrupted (not as a failed check), with every step not started.
func TestInterruptDuringPreflight(t *testing.T) {
	t.Parallel()
	load := func() (*engine.Plan, *engine.Graph, context.Context) {
		started := make(chan struct{})
		reg := engine.NewRegistry()
		engine.Register(reg, engine.StepType{Name: "pf"}, struct{}{}, func(string, *struct{}) (engine.Step, error) {
			return preflightStep{blockingCheck{started}}, nil
		})
		p, g := loadString(t, reg, header+"steps:\n  a: {type: pf}\n", nil)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() { <-started; cancel() }()
		return p, g, ctx
	}
	_, g, ctx := load()
	rep, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir(), Preflight: &engine.PreflightOptions{}})
	if !errors.Is(err, engine.ErrInterrupted) || rep.Status != engine.OutcomeInterrupted {
		t.Fatalf("Run(): %v, status %s; want ErrInterrupted and interrupted", err, rep.Status)
	}
	if r := result(t, rep, "a"); r.Status != engine.StatusCancelled || r.Message != "not started: interrupted" {
		t.Errorf("step a: %+v", r)
	}
	_, g, ctx = load()
	pre, err := engine.Preflight(ctx, g, engine.PreflightOptions{})
	if !errors.Is(err, engine.ErrInterrupted) || pre.Status != engine.OutcomeInterrupted {
		t.Errorf("Preflight(): %v, %+v; want ErrInterrupted", err, pre)
	}
}

// failingCheck is a step whose Check fails; it counts its calls.
type failingCheck struct{ calls *atomic.Int32 }

func (s failingCheck) Check(context.Context) (engine.Change, error) {
	s.calls.Add(1)
	return engine.Change{}, errors.New("cannot tell")
}

func (s failingCheck) Apply(context.Context) error { return nil }

// TestFailedCheckIsNotRunAgain: a Check that fails before the run is the
// first attempt's result, not asked again; only a retry checks again.
func TestFailedCheckIsNotRunAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retry string
		want  int32
	}{{"", 1}, {", retry: {attempts: 3, delay: 1ms}", 3}} {
		var calls atomic.Int32
		reg := engine.NewRegistry()
		engine.Register(reg, engine.StepType{Name: "failing"}, struct{}{}, func(string, *struct{}) (engine.Step, error) {
			return failingCheck{calls: &calls}, nil
		})
		_, g := loadString(t, reg, header+"steps:\n  a: {type: failing"+tc.retry+"}\n", nil)
		rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
		if err != nil || rep.Steps[0].Status != engine.StatusFailed || !strings.Contains(rep.Steps[0].Error, "check: cannot tell") {
			t.Fatalf("%q: %v %+v", tc.retry, err, rep.Steps)
		}
		if n := calls.Load(); n != tc.want {
			t.Errorf("%q: Check ran %d times, want %d", tc.retry, n, tc.want)
		}
	}
}
