package steps_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// TestWrongPublishedChecksumIsNotRemembered: a checksum document that is
// wrong once (a mirror mid-sync) fails that apply, but is not kept: the
// next apply on the host fetches it again and succeeds. Only a checksum
// that an artifact verified against is remembered.
func TestWrongPublishedChecksumIsNotRemembered(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	shared := mustCache(t)
	var served atomic.Int32
	s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		// Wrong for the first two requests: the prefetch's and the apply's.
		if strings.HasSuffix(r.URL.Path, "/kubelet.sha256") && served.Add(1) <= 2 {
			w.Write([]byte(strings.Repeat("ab", 32) + "\n"))
			return true
		}
		return false
	})
	rep, err := s.apply(shared, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := statusOf(rep)["kube"]; !strings.Contains(st, "verify sha256") {
		t.Fatalf("kube with a wrong published checksum: %s, want a checksum mismatch", st)
	}
	rep, err = s.apply(shared, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		t.Fatalf("apply after the mirror was fixed: %v", statusOf(rep))
	}
	// Verified now, so remembered: another machine asks for it no more.
	before := served.Load()
	rep, err = s.apply(shared, zerolog.Nop(), map[string]string{"machine": "other"})
	if err != nil || rep.Failed() {
		t.Fatalf("second machine: %v %v", err, statusOf(rep))
	}
	if n := served.Load(); n != before {
		t.Errorf("kubelet.sha256 fetched again for a second machine (%d times, then %d), want it remembered once verified", before, n)
	}
}
