package engine

import (
	"context"
	"time"
)

// WithSleep replaces the wait between retry attempts, so tests can observe
// the backoff without waiting for it.
func WithSleep(o RunOptions, f func(ctx context.Context, d time.Duration) error) RunOptions {
	o.sleep = f
	return o
}
