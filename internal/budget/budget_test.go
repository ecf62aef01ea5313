package budget_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/budget"
)

// gauge records the most items running at once.
type gauge struct{ now, peak atomic.Int64 }

func (g *gauge) enter() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}
func (g *gauge) leave() { g.now.Add(-1) }

func TestRunHoldsASlotPerItem(t *testing.T) {
	t.Parallel()
	b := budget.New(3)
	var g gauge
	var done atomic.Int64
	errs := b.Run(context.Background(), 40, func(context.Context, int) error {
		g.enter()
		defer g.leave()
		time.Sleep(time.Millisecond)
		done.Add(1)
		return nil
	})
	if done.Load() != 40 || len(errs) != 40 {
		t.Fatalf("%d items ran, %d errors slots; want 40", done.Load(), len(errs))
	}
	if p := g.peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrency %d; want at most 3 (and more than 1)", p)
	}
}

// Items nested in Run draw from the same budget: the total never exceeds
// it, and when it is spent they run in their caller, so nothing waits for
// a slot that only it could free.
func TestEachInsideRunNeverDeadlocksNorOverdraws(t *testing.T) {
	t.Parallel()
	b := budget.New(4)
	ctx := budget.With(context.Background(), b)
	var g gauge
	var leaves atomic.Int64
	errs := b.Run(ctx, 8, func(ctx context.Context, _ int) error {
		g.enter()
		defer g.leave()
		return budget.Each(ctx, 10, func(context.Context, int) error {
			g.enter()
			defer g.leave()
			time.Sleep(200 * time.Microsecond)
			leaves.Add(1)
			return nil
		})
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if leaves.Load() != 80 {
		t.Fatalf("%d leaves ran; want 80", leaves.Load())
	}
	// An outer item and its caller-run leaf count twice in the gauge but
	// are one goroutine: goroutines = slots, gauge <= 2 * slots.
	if p := g.peak.Load(); p > 8 {
		t.Fatalf("peak %d entries at once; want at most 2 per slot (8)", p)
	}
}

func TestEachWithoutBudgetRunsInOrderInTheCaller(t *testing.T) {
	t.Parallel()
	var got []int
	err := budget.Each(context.Background(), 5, func(_ context.Context, i int) error { got = append(got, i); return nil })
	if err != nil || len(got) != 5 || got[0] != 0 || got[4] != 4 {
		t.Fatalf("got %v, %v; want 0..4 in order", got, err)
	}
}

func TestEachFirstErrorCancelsTheRest(t *testing.T) {
	t.Parallel()
	ctx := budget.With(context.Background(), budget.New(4))
	boom := errors.New("boom")
	var started atomic.Int64
	err := budget.Each(ctx, 1000, func(ctx context.Context, i int) error {
		started.Add(1)
		if i == 3 {
			return boom
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v; want boom", err)
	}
	if started.Load() > 100 {
		t.Fatalf("%d items started after the failure; want the rest cancelled", started.Load())
	}
}

func TestPanicBecomesAnError(t *testing.T) {
	t.Parallel()
	err := budget.Each(context.Background(), 2, func(_ context.Context, i int) error {
		if i == 1 {
			panic("kaboom")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("err = %v; want the panic", err)
	}
	errs := budget.New(1).Run(context.Background(), 1, func(context.Context, int) error { panic("again") })
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "again") {
		t.Fatalf("Run err = %v; want the panic", errs[0])
	}
}

func TestCancelledBeforeTheEnd(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := budget.Each(ctx, 10, func(context.Context, int) error {
		if n++; n == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 2 {
		t.Fatalf("Each = %v after %d items; want context.Canceled after 2", err, n)
	}
	b := budget.New(1)
	if err := b.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	ran := false
	errs := b.Run(ctx2, 3, func(context.Context, int) error { ran = true; return nil })
	if ran || len(errs) != 3 {
		t.Fatal("an item started without a slot")
	}
	b.Release()
}
