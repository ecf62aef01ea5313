package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/retry"
	"github.com/rootfsctl/rootfsctl/internal/trace"
)

// startPrefetches begins, in file order and within the budget, the
// prefetch of every selected step that offers one and needs a change. Each
// finished prefetch's step id arrives on the returned channel; wait
// returns once no prefetch is running.
func (s *scheduler) startPrefetches(ctx context.Context) (pending map[string]bool, finished <-chan string, wait func()) {
	var todo []*PlanStep
	pending = map[string]bool{}
	for _, id := range s.ids {
		_, ok := s.p.byID[id].Impl.(Prefetcher)
		if c, checked := s.checks[id]; ok && checked && c.err == nil && c.ch.Needed && !s.opts.CheckOnly {
			todo = append(todo, s.p.byID[id])
			pending[id] = true
		}
	}
	out := make(chan string, len(todo))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Prefetches run at the lowest priority: a step running now (an
		// unpack) is what the run waits for.
		s.budget.Run(budget.Background(ctx), len(todo), func(ctx context.Context, i int) error {
			defer func() { out <- todo[i].ID }()
			s.prefetch(ctx, todo[i])
			return nil
		})
	}()
	return pending, out, func() { <-done }
}

func (s *scheduler) prefetch(ctx context.Context, st *PlanStep) {
	log := s.stepLogger(st)
	defer func() {
		if p := recover(); p != nil {
			log.Debug().Interface("panic", p).Msg("prefetch panicked; apply will retry")
		}
	}()
	start := time.Now()
	pctx := ctx
	if st.Timeout > 0 {
		// The step's timeout bounds each attempt, its prefetch included.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, st.Timeout)
		defer cancel()
	}
	pfctx := s.stepContext(ctx, st)
	end := trace.Span(pfctx, "prefetch")
	err := st.Impl.(Prefetcher).Prefetch(pfctx)
	end()
	if err != nil {
		if pctx.Err() == nil && ctx.Err() != nil && st.Retry.Attempts <= 1 {
			// Its one attempt's time went on the prefetch.
			s.spent.Store(st.ID, fmt.Errorf("timed out after %s: %w", st.Timeout, err))
			return
		}
		if pctx.Err() == nil && ctx.Err() == nil && (retry.IsExhausted(err) || retry.IsPermanent(err)) {
			log.Debug().Err(err).Msg("prefetch failed for good; the step fails with it")
			s.spent.Store(st.ID, err)
			return
		}
		log.Debug().Err(err).Msg("prefetch failed; apply will retry")
		return
	}
	log.Debug().Dur("durationMs", time.Since(start)).Msg("prefetched")
}

// release tells every step whose prefetch ran that the run is over, so
// that what the prefetch kept for its Apply goes, whether or not the step
// ran: its Apply has returned, and so has every prefetch.
func (s *scheduler) release(ctx context.Context, prefetched map[string]bool) {
	for _, id := range s.ids {
		if r, ok := s.p.byID[id].Impl.(Releaser); ok && prefetched[id] {
			r.Release(s.stepContext(ctx, s.p.byID[id]))
		}
	}
}
