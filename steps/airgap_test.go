package steps_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/internal/oci"
	"github.com/rootfsctl/rootfsctl/internal/retry"
	"github.com/rootfsctl/rootfsctl/steps"
)

func siteMirror(t *testing.T, dest string) *mirror.Mirror {
	t.Helper()
	d, err := mirror.ParseDest(dest)
	if err != nil {
		t.Fatal(err)
	}
	return &mirror.Mirror{Dest: d, Reg: &oci.Registry{Keychain: authn.DefaultKeychain, Transport: http.DefaultTransport,
		UserAgent: "t", Policy: retry.Policy{Attempts: 2, Delay: time.Millisecond, MaxDelay: time.Millisecond}}}
}

// broken answers every request with 503: the upstream is gone.
func broken(w http.ResponseWriter, _ *http.Request) bool {
	w.WriteHeader(http.StatusServiceUnavailable)
	return true
}

// TestAirGap: everything the demo plan fetches, listed for two platforms,
// is mirrored into a registry and into a layout (a second mirror copies
// nothing); with the upstream registry and artifact server down, a
// machine provisioned from either mirror is file for file the one
// provisioned from upstream; an item the mirror lacks is named, and comes
// from upstream only with fallback.
func TestAirGap(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	opts := steps.Options{Fetch: fetch.New("t", fetch.WithRetries(2, time.Millisecond)), Cache: mustCache(t)}
	amd, _ := s.planWith(opts, nil)
	arm, _ := s.planWith(opts, map[string]string{"arch": "arm64"})
	content, err := steps.Inventory(amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	if len(content.Images) != 1 || strings.Join(content.Images[0].Platforms, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("images: %+v", content.Images)
	}
	if len(content.Artifacts) < 8 {
		t.Fatalf("only %d artifacts listed", len(content.Artifacts))
	}
	reg := siteMirror(t, "oci://"+newRegistry(t)+"/site")
	layout := siteMirror(t, "oci-layout:"+filepath.Join(t.TempDir(), "carry"))
	for _, m := range []*mirror.Mirror{reg, layout} {
		for round, wantCopied := range []bool{true, false} {
			res, err := steps.Mirror(context.Background(), content, m, 4)
			if err != nil {
				t.Fatalf("%s round %d: %v", m.Dest, round, err)
			}
			for _, r := range res {
				if r.Copied != wantCopied {
					t.Errorf("%s round %d: %s copied=%v", m.Dest, round, r.Item, r.Copied)
				}
			}
		}
	}

	upstream := filepath.Join(t.TempDir(), "upstream")
	wantAll(t, applyWith(t, s, opts, upstream), engine.StatusChanged)
	s.setFault(broken)
	s.setRegistryFault(broken)
	for _, m := range []*mirror.Mirror{reg, layout} {
		out := filepath.Join(t.TempDir(), "from-mirror")
		rep := applyWith(t, s, steps.Options{Fetch: opts.Fetch, Cache: mustCache(t), Mirror: m}, out)
		wantAll(t, rep, engine.StatusChanged)
		if d := diffManifests(machineFiles(t, upstream), machineFiles(t, out)); len(d) > 0 {
			t.Errorf("%s: the machine differs from upstream's: %v", m.Dest, d)
		}
	}

	empty := siteMirror(t, "oci://"+newRegistry(t)+"/empty")
	rep := applyWith(t, s, steps.Options{Fetch: opts.Fetch, Cache: mustCache(t), Mirror: empty}, filepath.Join(t.TempDir(), "m"))
	if st := statusOf(rep); rep.Steps[0].Status != engine.StatusFailed || !strings.Contains(rep.Steps[0].Error, "is not in the mirror") {
		t.Errorf("from an empty mirror: %v %q", st, rep.Steps[0].Error)
	}
	s.setFault(nil)
	s.setRegistryFault(nil)
	rep = applyWith(t, s, steps.Options{Fetch: opts.Fetch, Cache: mustCache(t), Mirror: empty, MirrorFallback: true}, filepath.Join(t.TempDir(), "f"))
	wantAll(t, rep, engine.StatusChanged)
}

// applyWith applies the demo plan into out with opts.
func applyWith(t *testing.T, s *stand, opts steps.Options, out string) *engine.Report {
	t.Helper()
	_, g := s.planWith(opts, map[string]string{"out": out})
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: s.lockDir})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// machineFiles is the machine's files (type, mode, size, digest, link
// target), without times and rootfsctl's own records, which say when and
// from where.
func machineFiles(t *testing.T, out string) map[string]string {
	t.Helper()
	m := manifest(t, filepath.Join(out, "machines/demo1"))
	for k, v := range m {
		if strings.HasPrefix(k, "var/lib/rootfsctl/") && !strings.HasPrefix(k, "var/lib/rootfsctl/claims") {
			delete(m, k)
			continue
		}
		if f := strings.Fields(v); len(f) == 4 && f[0][0] == '-' {
			m[k] = strings.Join(f[:3], " ")
		}
	}
	return m
}
