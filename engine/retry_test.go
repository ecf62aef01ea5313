package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rs/zerolog"
)

func TestTimeout(t *testing.T) {
	t.Parallel()
	src := header + `steps:
  slow:
    type: run
    timeout: 100ms
    with: {command: [sleep, "10"]}
`
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r := result(t, rep, "slow")
	if r.Status != engine.StatusFailed || !strings.HasPrefix(r.Error, "timed out after 100ms") {
		t.Errorf("slow: got %s %q, want failed with a timeout message", r.Status, r.Error)
	}
}

// TestRetry uses a real command that fails twice, then succeeds, and checks
// the waits between attempts grow exponentially within their jitter bounds.
func TestRetry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := header + `steps:
  flaky:
    type: run
    retry: {attempts: 4, delay: 100ms, maxDelay: 150ms}
    with:
      dir: ` + dir + `
      command: [sh, -c, 'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]']
  hopeless:
    type: run
    retry: {attempts: 2, delay: 1ms}
    with: {command: ["false"]}
`
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	var mu sync.Mutex
	var all []time.Duration
	opts := engine.WithSleep(engine.ApplyOptions{Parallelism: 1, FailurePolicy: engine.KeepGoing, Logger: zerolog.Nop()},
		func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			all = append(all, d)
			mu.Unlock()
			return nil
		})
	rep, err := engine.Apply(context.Background(), g, opts)
	if err != nil {
		t.Fatal(err)
	}
	fl := result(t, rep, "flaky")
	if fl.Status != engine.StatusChanged || fl.Attempts != 3 {
		t.Errorf("flaky: got %s after %d attempts, want changed after 3", fl.Status, fl.Attempts)
	}
	h := result(t, rep, "hopeless")
	if h.Status != engine.StatusFailed || h.Attempts != 2 {
		t.Errorf("hopeless: got %s after %d attempts, want failed after 2", h.Status, h.Attempts)
	}
	// flaky ran first (parallelism 1): its two waits are 100ms then 150ms
	// (200ms capped), each drawn from the upper half.
	if len(all) != 3 {
		t.Fatalf("recorded waits %v, want 3 (two for flaky, one for hopeless)", all)
	}
	for i, bounds := range [][2]time.Duration{{50 * time.Millisecond, 100 * time.Millisecond}, {75 * time.Millisecond, 150 * time.Millisecond}} {
		if all[i] < bounds[0] || all[i] > bounds[1] {
			t.Errorf("wait %d: got %v, want within %v", i+1, all[i], bounds)
		}
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	src := header + "steps:\n  p: {type: probe, retry: {attempts: 5, delay: 1ms}, with: {permanent: true}}\n"
	_, g := loadString(t, newRegistry(tr), src, nil)
	rep, _ := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if r := result(t, rep, "p"); r.Status != engine.StatusFailed || r.Attempts != 1 || tr.attempts["p"] != 1 {
		t.Errorf("p: got %s after %d attempts (%d applies), want failed after 1", r.Status, r.Attempts, tr.attempts["p"])
	}
}

// TestRetryStopsOnCancel: a cancellation during the wait between attempts
// ends the step at once instead of sleeping out the backoff.
func TestRetryStopsOnCancel(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	src := header + "steps:\n  p: {type: probe, retry: {attempts: 5, delay: 1h, maxDelay: 1h}, with: {fail: true}}\n"
	_, g := loadString(t, newRegistry(tr), src, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			tr.mu.Lock()
			n := tr.attempts["p"]
			tr.mu.Unlock()
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	rep, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("Run(): got %v, want ErrInterrupted", err)
	}
	if r := result(t, rep, "p"); r.Attempts != 1 || r.Status != engine.StatusCancelled {
		t.Errorf("p: got %s after %d attempts, want cancelled after 1", r.Status, r.Attempts)
	}
}

func TestPanicBecomesFailure(t *testing.T) {
	t.Parallel()
	src := header + "failurePolicy: keep-going\nsteps:\n  bad: {type: probe, with: {panic: true}}\n  good: {type: probe}\n"
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"bad": "failed", "good": "changed"})
	if e := result(t, rep, "bad").Error; e != "panic: probe bad exploded" {
		t.Errorf("bad error: got %q", e)
	}
}
