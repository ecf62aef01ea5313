package steps_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestRetriesDoNotMultiplyAcrossLayers holds the README's promise: a
// download retries its own transfer, the engine does not run an exhausted
// step again, so a mirror that resets every connection sees the plan's
// attempts (or the client's when the plan sets none), not their product.
func TestRetriesDoNotMultiplyAcrossLayers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		retry string
		want  int64
	}{
		{"the plan's retry", "    retry: {attempts: 3, delay: 1ms, maxDelay: 2ms}\n", 3},
		{"the client's retries", "", 4},
		{"one attempt", "    retry: {attempts: 1}\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close() // a reset mid-request: transient, so retried
				}
			}))
			defer srv.Close()
			opts := steps.Options{Fetch: fetch.New("t", fetch.WithRetries(4, time.Millisecond)), Cache: mustCache(t)}
			machine := filepath.Join(t.TempDir(), "m")
			p := parse(t, opts, fmt.Sprintf("  cni:\n    type: download-cni\n%s    with: {machineDir: %s, arch: amd64, version: 1.5.1, baseURL: %s/cni}\n",
				tc.retry, machine, srv.URL))
			rep := applyPlan(t, p)
			st := rep.Steps[0]
			if st.Status != engine.StatusFailed {
				t.Fatalf("cni is %s, want failed", st.Status)
			}
			if got := requests.Load(); got != tc.want {
				t.Errorf("the mirror saw %d requests, want %d (step attempts %d, error %s)", got, tc.want, st.Attempts, st.Error)
			}
		})
	}
}
