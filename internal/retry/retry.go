// Package retry owns rootfsctl's one retry policy: how often a piece of work
// is attempted, how long to wait between attempts, and which errors end the
// attempts early. The engine retries steps with it and fetch retries
// transfers with it.
//
// Attempts never multiply across layers: Do marks the error of a last
// attempt as exhausted, and no Do retries an exhausted (or Permanent) error
// again. A step whose download used up its attempts fails at once instead of
// downloading again once per step attempt.
//
// It imports nothing of rootfsctl.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy says how often work is attempted and how long to wait in between.
type Policy struct {
	Attempts int           // in all; 1 means no retry
	Delay    time.Duration // before the second attempt; doubled per further failure
	MaxDelay time.Duration // upper bound of a wait
}

// Backoff is the wait after the given failed attempt (1-based): the delay
// doubled per attempt, capped at MaxDelay, then drawn uniformly from its
// upper half so that concurrent retries spread out ("equal jitter"). rnd
// returns a number in [0, 1).
func (p Policy) Backoff(attempt int, rnd func() float64) time.Duration {
	d := p.Delay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

// Permanent marks an error that another attempt cannot fix (bad input, a
// checksum that will not match next time either).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

type exhaustedError struct {
	err      error
	attempts int
}

func (e exhaustedError) Error() string { return e.err.Error() }
func (e exhaustedError) Unwrap() error { return e.err }

// IsExhausted reports whether err is the error of work that used up its
// attempts in an inner Do.
func IsExhausted(err error) bool {
	var x exhaustedError
	return errors.As(err, &x)
}

// Final reports whether no attempt should follow err.
func Final(err error) bool { return IsPermanent(err) || IsExhausted(err) }

// Sleep waits for d or until ctx is done, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hooks adjust a Do; every field may be nil.
type Hooks struct {
	// Retryable says whether an error is worth another attempt; nil
	// means every error that is not Final.
	Retryable func(error) bool
	// OnRetry is told about each failed attempt that will be followed by
	// another, and the wait before it.
	OnRetry func(attempt int, err error, wait time.Duration)
	// Sleep replaces Sleep (tests observe the waits).
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand replaces the jitter's random source.
	Rand func() float64
}

// Do calls fn until it succeeds, ctx is done, fn's error is not retryable,
// or p.Attempts attempts were made; it returns the number of attempts and
// the last error. The error of the last allowed attempt comes back marked
// exhausted (see IsExhausted) when it was retryable, so that an outer Do
// does not try the same work again.
func Do(ctx context.Context, p Policy, h Hooks, fn func(ctx context.Context, attempt int) error) (int, error) {
	sleep, rnd := h.Sleep, h.Rand
	if sleep == nil {
		sleep = Sleep
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx, attempt)
		switch {
		case err == nil:
			return attempt, nil
		case ctx.Err() != nil || Final(err) || (h.Retryable != nil && !h.Retryable(err)):
			return attempt, err
		case attempt >= p.Attempts:
			return attempt, exhaustedError{err: err, attempts: attempt}
		}
		wait := p.Backoff(attempt, rnd)
		if h.OnRetry != nil {
			h.OnRetry(attempt, err, wait)
		}
		if serr := sleep(ctx, wait); serr != nil {
			return attempt, err
		}
	}
}

type policyKey struct{}

// WithPolicy returns a context whose inner work (a transfer) is attempted
// under p instead of its own default.
func WithPolicy(ctx context.Context, p Policy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// PolicyFrom returns the policy set with WithPolicy, or def.
func PolicyFrom(ctx context.Context, def Policy) Policy {
	if p, ok := ctx.Value(policyKey{}).(Policy); ok {
		return p
	}
	return def
}
