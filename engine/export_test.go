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

// TracingProgress is the progress a traced step's transfers report to.
func TracingProgress(t *Tracer, step string) Progress {
	return tracingProgress{inner: nopProgress{}, t: t, step: step}
}

// OpenTransfers lists how many transfers named name are in flight.
func (t *Tracer) OpenTransfers(name string) []struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, used := range t.rows[name] {
		if used {
			n++
		}
	}
	return make([]struct{}, n)
}
