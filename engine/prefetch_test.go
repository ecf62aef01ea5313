package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
)

// eventLog records what happened, in order.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) { l.mu.Lock(); l.events = append(l.events, e); l.mu.Unlock() }

func (l *eventLog) index(e string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.events {
		if x == e {
			return i
		}
	}
	return -1
}

type slowStep struct {
	id  string
	log *eventLog
}

func (s *slowStep) Check(context.Context) (engine.Change, error) {
	return engine.NeedsChange("slow"), nil
}
func (s *slowStep) Apply(context.Context) error {
	time.Sleep(50 * time.Millisecond)
	s.log.add("applied " + s.id)
	return nil
}

type fetchingStep struct {
	slowStep
	upToDate bool
}

func (s *fetchingStep) Check(context.Context) (engine.Change, error) {
	if s.upToDate {
		return engine.UpToDate("fine"), nil
	}
	return engine.NeedsChange("fetch"), nil
}

func (s *fetchingStep) Prefetch(context.Context) error {
	s.log.add("prefetch " + s.id)
	return nil
}

func (s *fetchingStep) Apply(context.Context) error {
	s.log.add("applied " + s.id)
	return nil
}

// waitingStep's Apply waits until its log holds event, for at most 10 s.
type waitingStep struct {
	slowStep
	event string
}

func (s *waitingStep) Apply(context.Context) error {
	for deadline := time.Now().Add(10 * time.Second); s.log.index(s.event) < 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	s.log.add("applied " + s.id)
	return nil
}

// TestPrefetchOverlapsNeeds: a Prefetcher's prefetch starts with the run,
// before its need has finished; its Apply still waits for the need; an up
// to date step prefetches nothing.
func TestPrefetchOverlapsNeeds(t *testing.T) {
	t.Parallel()
	ev := &eventLog{}
	reg := engine.NewRegistry()
	// base waits (up to 10 s) for dl's prefetch to start: prefetches run
	// at the lowest CPU priority, so on a loaded machine (the whole test
	// suite at once) a fixed sleep may end first; a prefetch that waits
	// for its needs makes base wait the full 10 s and the order below fail.
	engine.Register(reg, engine.StepType{Name: "slow"}, struct{}{}, func(id string, _ *struct{}) (engine.Step, error) {
		return &waitingStep{slowStep{id, ev}, "prefetch dl"}, nil
	})
	type fetchingParams struct {
		UpToDate bool `yaml:"upToDate"`
	}
	engine.Register(reg, engine.StepType{Name: "fetching"}, fetchingParams{}, func(id string, p *fetchingParams) (engine.Step, error) {
		return &fetchingStep{slowStep{id, ev}, p.UpToDate}, nil
	})
	_, g := loadString(t, reg, header+`steps:
  base: {type: slow}
  dl: {type: fetching, needs: [base]}
  done: {type: fetching, needs: [base], with: {upToDate: true}}
`, nil)
	if _, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	pre, base, dl := ev.index("prefetch dl"), ev.index("applied base"), ev.index("applied dl")
	if pre < 0 || pre > base {
		t.Errorf("prefetch of dl did not start before base finished: %v", ev.events)
	}
	if dl < base {
		t.Errorf("dl applied before its need: %v", ev.events)
	}
	if ev.index("prefetch done") >= 0 {
		t.Errorf("an up-to-date step prefetched: %v", ev.events)
	}
	ev.events = nil
	if _, err := engine.Apply(context.Background(), g, engine.ApplyOptions{CheckOnly: true, Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	if len(ev.events) != 0 {
		t.Errorf("a check-only run prefetched or applied: %v", ev.events)
	}
}

type lockingStep struct {
	dir     string
	started chan struct{}
}

func (s *lockingStep) Check(context.Context) (engine.Change, error) {
	return engine.NeedsChange("x"), nil
}
func (s *lockingStep) Apply(ctx context.Context) error {
	close(s.started)
	<-ctx.Done()
	return ctx.Err()
}
func (s *lockingStep) Resources() []string { return []string{s.dir} }

// TestSecondRunOnSameResourceIsRefused: while one run holds a machine, a
// second refuses with a message naming the holder, or waits with LockWait.
func TestSecondRunOnSameResourceIsRefused(t *testing.T) {
	t.Parallel()
	machine := filepath.Join(t.TempDir(), "machines", "kube1")
	lockDir := t.TempDir()
	started := make(chan struct{})
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "hold"}, struct{}{}, func(id string, _ *struct{}) (engine.Step, error) {
		return &lockingStep{dir: machine, started: started}, nil
	})
	_, g := loadString(t, reg, header+"steps:\n  a: {type: hold}\n", nil)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir})
		first <- err
	}()
	<-started
	_, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir, LockWait: 200 * time.Millisecond})
	var le *engine.LockedError
	if !errors.As(err, &le) || le.Holder.PID != os.Getpid() || le.Resource != machine {
		t.Fatalf("second run: %v, want a LockedError naming pid %d and %s", err, os.Getpid(), machine)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("message does not name the holder: %v", err)
	}
	// Waiting for the lock ends when the run is interrupted, long before
	// the wait is over.
	wctx, wcancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, wcancel)
	rep, err := engine.Apply(wctx, g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir, LockWait: time.Hour})
	if !errors.Is(err, engine.ErrInterrupted) || rep.Status != engine.OutcomeInterrupted {
		t.Errorf("run interrupted while waiting for the lock: %v, %+v", err, rep)
	}
	cancel()
	<-first
	started2 := make(chan struct{})
	reg2 := engine.NewRegistry()
	engine.Register(reg2, engine.StepType{Name: "hold"}, struct{}{}, func(id string, _ *struct{}) (engine.Step, error) {
		return &lockingStep{dir: machine, started: started2}, nil
	})
	_, g2 := loadString(t, reg2, header+"steps:\n  a: {type: hold}\n", nil)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { <-started2; cancel2() }()
	if _, err := engine.Apply(ctx2, g2, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir}); !errors.Is(err, engine.ErrInterrupted) {
		t.Errorf("after the first run ended, the lock was not free: %v", err)
	}
}
