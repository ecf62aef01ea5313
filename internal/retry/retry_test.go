package retry_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/retry"
)

func noSleep(context.Context, time.Duration) error { return nil }

// The wait stays within the upper half of the capped doubled delay, for
// any attempt, delay, cap and random draw (a reference computed in floats).
func TestBackoffWithinBounds(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		p := retry.Policy{Delay: time.Duration(r.Int64N(int64(time.Minute))) + 1, MaxDelay: time.Duration(r.Int64N(int64(time.Hour))) + 1}
		attempt := 1 + r.IntN(80)
		x := r.Float64()
		got := p.Backoff(attempt, func() float64 { return x })
		capped := float64(p.Delay)
		for i := 1; i < attempt && capped < float64(p.MaxDelay); i++ {
			capped *= 2
		}
		capped = min(capped, float64(p.MaxDelay))
		if float64(got) < capped/2-1 || float64(got) > capped+1 {
			t.Fatalf("Backoff(%d) with %+v and draw %v = %v, want within [%v, %v]", attempt, p, x, got, time.Duration(capped/2), time.Duration(capped))
		}
	}
}

func TestDoStopsAtFirstSuccess(t *testing.T) {
	t.Parallel()
	calls := 0
	n, err := retry.Do(context.Background(), retry.Policy{Attempts: 5}, retry.Hooks{Sleep: noSleep}, func(context.Context, int) error {
		calls++
		if calls < 3 {
			return errors.New("flaky")
		}
		return nil
	})
	if err != nil || n != 3 || calls != 3 {
		t.Fatalf("Do = %d, %v after %d calls; want 3, nil after 3", n, err, calls)
	}
}

// The last error comes back exhausted, and an outer Do does not try the
// same work again: nested policies add no attempts.
func TestNestedAttemptsDoNotMultiply(t *testing.T) {
	t.Parallel()
	inner := 0
	boom := errors.New("connection reset")
	outerN, err := retry.Do(context.Background(), retry.Policy{Attempts: 3}, retry.Hooks{Sleep: noSleep}, func(ctx context.Context, _ int) error {
		_, err := retry.Do(ctx, retry.Policy{Attempts: 4}, retry.Hooks{Sleep: noSleep}, func(context.Context, int) error {
			inner++
			return boom
		})
		return err
	})
	if inner != 4 || outerN != 1 {
		t.Fatalf("inner ran %d times, outer %d; want 4 and 1", inner, outerN)
	}
	if !errors.Is(err, boom) || !retry.IsExhausted(err) || !retry.Final(err) {
		t.Fatalf("err = %v (exhausted %v); want the inner error, exhausted", err, retry.IsExhausted(err))
	}
}

func TestPermanentAndNotRetryableEndAtOnce(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]struct {
		err   error
		hooks retry.Hooks
	}{
		"permanent":     {retry.Permanent(errors.New("checksum mismatch")), retry.Hooks{}},
		"not retryable": {errors.New("404"), retry.Hooks{Retryable: func(error) bool { return false }}},
	} {
		h.hooks.Sleep = noSleep
		calls := 0
		_, err := retry.Do(context.Background(), retry.Policy{Attempts: 9}, h.hooks, func(context.Context, int) error { calls++; return h.err })
		if calls != 1 || err == nil || retry.IsExhausted(err) {
			t.Errorf("%s: %d calls, err %v (exhausted %v); want 1 call, not exhausted", name, calls, err, retry.IsExhausted(err))
		}
	}
	if retry.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) is not nil")
	}
}

// Cancelling ends the wait between attempts at once, with the attempt's
// error, not marked exhausted.
func TestCancelEndsTheWait(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	boom := errors.New("503")
	var waits []time.Duration
	start := time.Now()
	_, err := retry.Do(ctx, retry.Policy{Attempts: 5, Delay: time.Hour, MaxDelay: time.Hour},
		retry.Hooks{OnRetry: func(_ int, _ error, w time.Duration) { waits = append(waits, w); cancel() }},
		func(context.Context, int) error { return boom })
	if !errors.Is(err, boom) || retry.IsExhausted(err) {
		t.Fatalf("err = %v; want the attempt's error, not exhausted", err)
	}
	if len(waits) != 1 || waits[0] < 30*time.Minute {
		t.Fatalf("waits %v; want one wait of at least half the delay", waits)
	}
	if time.Since(start) > time.Minute {
		t.Fatal("the wait was slept out")
	}
}

func TestPolicyTravelsInContext(t *testing.T) {
	t.Parallel()
	def := retry.Policy{Attempts: 4}
	if got := retry.PolicyFrom(context.Background(), def); got != def {
		t.Fatalf("no policy set: got %+v, want the default", got)
	}
	p := retry.Policy{Attempts: 2, Delay: time.Second, MaxDelay: time.Minute}
	if got := retry.PolicyFrom(retry.WithPolicy(context.Background(), p), def); got != p {
		t.Fatalf("got %+v, want %+v", got, p)
	}
}
