package fetch_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// waits records the waits between attempts instead of sleeping them.
type waits struct {
	mu   sync.Mutex
	list []time.Duration
}

func (w *waits) sleep(_ context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, d)
	return nil
}

// answering counts requests and answers each with code.
func answering(t *testing.T, code int) (url string, requests *atomic.Int32) {
	requests = &atomic.Int32{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/artifact", requests
}

// TestAttemptsFollowThePolicy: a transfer is attempted as the retry policy
// in its context says, else as the client's (WithRetries, else four
// attempts starting at one second); the waits double with jitter from
// their upper half; a last failure is marked exhausted, so that no outer
// retry tries it again; an answer a retry cannot change is not retried.
func TestAttemptsFollowThePolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		opts      []fetch.Option
		ctx       *retry.Policy
		code      int
		attempts  int32
		waits     [][2]time.Duration // the range of each wait
		exhausted bool
	}{
		{name: "client default", code: http.StatusServiceUnavailable, attempts: 4, exhausted: true,
			waits: [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}, {2 * time.Second, 4 * time.Second}}},
		{name: "WithRetries", opts: []fetch.Option{fetch.WithRetries(2, 10*time.Millisecond)}, code: http.StatusBadGateway, attempts: 2, exhausted: true,
			waits: [][2]time.Duration{{5 * time.Millisecond, 10 * time.Millisecond}}},
		{name: "policy in the context wins", opts: []fetch.Option{fetch.WithRetries(5, time.Second)}, code: http.StatusTooManyRequests,
			ctx: &retry.Policy{Attempts: 3, Delay: 4 * time.Millisecond, MaxDelay: 6 * time.Millisecond}, attempts: 3, exhausted: true,
			waits: [][2]time.Duration{{2 * time.Millisecond, 4 * time.Millisecond}, {3 * time.Millisecond, 6 * time.Millisecond}}},
		{name: "404 is not retried", code: http.StatusNotFound, attempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, requests := answering(t, tc.code)
			var w waits
			c := fetch.New("t", append(tc.opts, fetch.WithSleep(w.sleep))...)
			var log bytes.Buffer
			ctx := zerolog.New(&log).WithContext(context.Background())
			if tc.ctx != nil {
				ctx = retry.WithPolicy(ctx, *tc.ctx)
			}
			_, err := c.Fetch(ctx, url, &bytes.Buffer{}, nil)
			if err == nil {
				t.Fatal("Fetch(): got nil error")
			}
			if n := requests.Load(); n != tc.attempts {
				t.Errorf("Fetch(): %d requests, want %d", n, tc.attempts)
			}
			if retry.IsExhausted(err) != tc.exhausted {
				t.Errorf("IsExhausted(%v) = %v, want %v", err, retry.IsExhausted(err), tc.exhausted)
			}
			if len(w.list) != len(tc.waits) {
				t.Fatalf("waits %v, want %d of them", w.list, len(tc.waits))
			}
			for i, d := range w.list {
				if d < tc.waits[i][0] || d > tc.waits[i][1] {
					t.Errorf("wait %d: %v, want within %v", i+1, d, tc.waits[i])
				}
			}
			if got := strings.Count(log.String(), `"retryInMs"`); got != len(tc.waits) {
				t.Errorf("%d retry warnings with their wait, want %d:\n%s", got, len(tc.waits), log.String())
			}
		})
	}
}

// TestAttemptsDoNotMultiply: a step retried under the same policy does
// not download again once the download used up its attempts.
func TestAttemptsDoNotMultiply(t *testing.T) {
	t.Parallel()
	url, requests := answering(t, http.StatusInternalServerError)
	var w waits
	c := fetch.New("t", fetch.WithSleep(w.sleep))
	p := retry.Policy{Attempts: 3, Delay: time.Millisecond, MaxDelay: time.Millisecond}
	ctx := retry.WithPolicy(context.Background(), p)
	steps, err := retry.Do(ctx, p, retry.Hooks{Sleep: w.sleep}, func(ctx context.Context, _ int) error {
		_, err := c.Fetch(ctx, url, &bytes.Buffer{}, nil)
		return err
	})
	if err == nil || steps != 1 || requests.Load() != 3 {
		t.Errorf("step attempts %d, requests %d (%v); want 1 step attempt and 3 requests", steps, requests.Load(), err)
	}
}
