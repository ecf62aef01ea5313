package oci

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// idleReader closes its source when no byte arrives for a while, which
// ends the read waiting on it with errIdle.
type idleReader struct {
	rc    io.ReadCloser
	after time.Duration
	timer *time.Timer
	idle  atomic.Bool
}

var errIdle = errors.New("the registry sent no data")

func newIdleReader(rc io.ReadCloser, after time.Duration) io.ReadCloser {
	if after <= 0 {
		return rc // no idle timeout
	}
	r := &idleReader{rc: rc, after: after}
	r.timer = time.AfterFunc(after, func() {
		r.idle.Store(true)
		_ = rc.Close() // unblocks the read; the reader reports errIdle
	})
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if r.idle.Load() {
		return n, fmt.Errorf("%w for %s", errIdle, r.after)
	}
	if n > 0 {
		r.timer.Reset(r.after)
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	return r.rc.Close()
}
