package steps_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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
		name     string
		retry    string
		prefetch bool // the step waits for another, so its download starts early
		want     int64
		notFound bool // the mirror answers 404, which no attempt would change
	}{
		{"a 404 with the plan's retry", "    retry: {attempts: 3, delay: 1ms, maxDelay: 2ms}\n", true, 1, true},
		{"the plan's retry", "    retry: {attempts: 3, delay: 1ms, maxDelay: 2ms}\n", false, 3, false},
		{"the client's retries", "", false, 4, false},
		{"one attempt", "    retry: {attempts: 1}\n", false, 1, false},
		{"prefetched with the plan's retry", "    retry: {attempts: 3, delay: 1ms, maxDelay: 2ms}\n", true, 3, false},
		{"prefetched with the client's retries", "", true, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if tc.notFound {
					http.NotFound(w, r)
					return
				}
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close() // a reset mid-request: transient, so retried
				}
			}))
			defer srv.Close()
			opts := steps.Options{Fetch: fetch.New("t", fetch.WithRetries(4, time.Millisecond)), Cache: mustCache(t)}
			machine := t.TempDir()
			src := fmt.Sprintf("  cni:\n    type: download-cni\n%s    with: {machineDir: %s, arch: amd64, version: 1.5.1, baseURL: %s/cni}\n",
				tc.retry, machine, srv.URL)
			if tc.prefetch {
				src = "  wait:\n    type: run\n    with: {command: [sleep, \"0.3\"]}\n" + strings.Replace(src, "    type: download-cni\n", "    type: download-cni\n    needs: [wait]\n", 1)
			}
			rep := applyPlan(t, parse(t, opts, src))
			st := rep.Steps[len(rep.Steps)-1]
			if st.Status != engine.StatusFailed || !strings.Contains(st.Error, ".sha256") {
				t.Fatalf("cni is %s (%s), want failed on its download", st.Status, st.Error)
			}
			if got := requests.Load(); got != tc.want {
				t.Errorf("the mirror saw %d requests, want %d (step attempts %d, error %s)", got, tc.want, st.Attempts, st.Error)
			}
		})
	}
}
