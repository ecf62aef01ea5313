// Package budget is rootfsctl's one concurrency budget: a number of slots
// that everything running at once in an apply draws from (steps, their
// checks and prefetches, preflight checks, and the downloads and probes
// inside a step). The engine makes one per apply and passes it down in the
// context; no part of rootfsctl starts goroutines outside it.
//
// Two ways to draw:
//   - Run, for work started from outside any slot (the engine's phases):
//     each item waits for a slot of its own.
//   - Each, for work inside something that already holds a slot (a step's
//     downloads): the caller works through the items itself and spare
//     slots add helpers. It never waits for a slot, so nested work cannot
//     deadlock, and it runs one at a time when the budget is spent.
//
// It imports nothing of rootfsctl.
package budget

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Budget is a number of slots. A nil *Budget has no spare slot.
type Budget struct{ slots chan struct{} }

// New returns a budget of n slots (at least 1).
func New(n int) *Budget { return &Budget{slots: make(chan struct{}, max(n, 1))} }

// Size is the number of slots.
func (b *Budget) Size() int {
	if b == nil {
		return 0
	}
	return cap(b.slots)
}

// Acquire waits for a slot, or returns ctx's error.
func (b *Budget) Acquire(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TryAcquire takes a slot if one is free.
func (b *Budget) TryAcquire() bool {
	if b == nil {
		return false
	}
	select {
	case b.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release gives back a slot taken with Acquire, TryAcquire or Slots.
func (b *Budget) Release() { <-b.slots }

// Slots is the channel a send on which takes a slot, for a select that
// waits for a slot and other events at once.
func (b *Budget) Slots() chan<- struct{} { return b.slots }

type key struct{}

// With returns a context carrying b.
func With(ctx context.Context, b *Budget) context.Context { return context.WithValue(ctx, key{}, b) }

// From returns the budget ctx carries, or nil.
func From(ctx context.Context) *Budget {
	b, _ := ctx.Value(key{}).(*Budget)
	return b
}

// Run calls fn for every i in [0, n), each in its own goroutine holding a
// slot of b, and waits for all of them. Items start in order; once ctx is
// done no further item starts. A panic in fn becomes that item's error.
// It returns the errors by item (nil entries for items that succeeded or
// never started).
func (b *Budget) Run(ctx context.Context, n int, fn func(ctx context.Context, i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if b.Acquire(ctx) != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer b.Release()
			settle(ctx)
			errs[i] = call(ctx, i, fn)
		}()
	}
	wg.Wait()
	return errs
}

// Each calls fn for every i in [0, n): in the calling goroutine, and in as
// many more as the budget in ctx has spare slots (never more than n-1). The
// first error cancels the context the other items see and is returned; a
// panic in fn becomes an error. When ctx is done before every item ran,
// Each returns ctx's error.
func Each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	b := From(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next  atomic.Int64
		once  sync.Once
		first error
		ran   atomic.Int64
	)
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n || ctx.Err() != nil {
				return
			}
			if err := call(ctx, i, fn); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
			ran.Add(1)
		}
	}
	var wg sync.WaitGroup
	for helpers := 1; helpers < n && b.TryAcquire(); helpers++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer b.Release()
			settle(ctx)
			work()
		}()
	}
	work()
	wg.Wait()
	if first != nil {
		return first
	}
	if int(ran.Load()) < n {
		return context.Cause(ctx)
	}
	return nil
}

func call(ctx context.Context, i int, fn func(ctx context.Context, i int) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(ctx, i)
}
