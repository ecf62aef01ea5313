package engine

import (
	"context"
	"time"
)

// WithSleep replaces the wait between retry attempts, so tests can observe
// the backoff without waiting for it.
func WithSleep(o ApplyOptions, f func(ctx context.Context, d time.Duration) error) ApplyOptions {
	o.sleep = f
	return o
}

// MaxValueBytesForTest is the bound of one expanded value.
const MaxValueBytesForTest = maxValueBytes
