package steps_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

// stand is a registry and an artifact mirror on loopback, with hooks to
// break the mirror and to see what the registry served.
type stand struct {
	t         *testing.T
	registry  string // host:port
	mirror    string // http://host:port
	mirrorDir string
	out       string // the demo plan's output dir
	resolv    string // the host resolv.conf the plan copies
	lockDir   string // machine locks of this stand's runs

	mu       sync.Mutex
	regPaths []string // registry requests
	fault    fault    // the mirror's
	regFault fault    // the registry's
}

// fault may answer a request in a server's place: it returns true when it
// did.
type fault func(w http.ResponseWriter, r *http.Request) bool

// serve starts a server answering with h, unless the fault that faultOf
// returns for the request answers first.
func (s *stand) serve(h http.Handler, faultOf func(r *http.Request) fault) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := faultOf(r); f != nil && f(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	s.t.Cleanup(srv.Close)
	return srv
}

func newStand(t *testing.T) *stand {
	t.Helper()
	s := &stand{t: t, mirrorDir: t.TempDir(), out: t.TempDir(), lockDir: t.TempDir()}
	rs := s.serve(quietRegistry(), func(r *http.Request) fault {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.regPaths = append(s.regPaths, r.Method+" "+r.URL.Path)
		return s.regFault
	})
	s.registry = strings.TrimPrefix(rs.URL, "http://")
	spec := fixture.DefaultMirror
	if err := fixture.WriteMirror(s.mirrorDir, spec); err != nil {
		t.Fatal(err)
	}
	spec.Containerd = "2.1.0"
	if err := fixture.WriteMirror(s.mirrorDir, spec); err != nil {
		t.Fatal(err)
	}
	ms := s.serve(http.FileServer(http.Dir(s.mirrorDir)), func(*http.Request) fault {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.fault
	})
	s.mirror = ms.URL
	s.resolv = filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(s.resolv, []byte("nameserver 127.0.0.53\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.push("rootfsctl/demo-node:v1", fixture.Index(map[string]v1.Image{"amd64": fixture.NodeImage("amd64"), "arm64": fixture.NodeImage("arm64")}))
	s.mu.Lock()
	s.regPaths = nil // only what the steps fetch counts
	s.mu.Unlock()
	return s
}

// push pushes idx to the stand's registry as repoTag.
// provisioned is a stand whose demo machine has been provisioned.
func provisioned(t *testing.T) *stand {
	t.Helper()
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
	return s
}

func (s *stand) push(repoTag string, idx v1.ImageIndex) {
	s.t.Helper()
	pushIndex(s.t, s.registry+"/"+repoTag, idx)
}

func (s *stand) setFault(f fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *stand) setRegistryFault(f fault) {
	s.mu.Lock()
	s.regFault = f
	s.mu.Unlock()
}

func (s *stand) machine() string { return filepath.Join(s.out, "machines", "demo1") }

// load loads the shipped demo plan pointed at this stand, with extra vars.
func (s *stand) load(opts steps.Options, extra map[string]string) (*engine.Plan, *engine.Graph, error) {
	reg := engine.NewRegistry()
	steps.Register(reg, opts)
	vars := map[string]string{"registry": s.registry, "mirror": s.mirror, "out": s.out, "resolvConf": s.resolv, "arch": "amd64"}
	maps.Copy(vars, extra)
	p, err := engine.Load("../plans/demo.yaml", engine.LoadOptions{Registry: reg, Host: host, Vars: vars})
	if err != nil {
		return nil, nil, fmt.Errorf("load plans/demo.yaml: %w", err)
	}
	g, err := engine.NewGraph(p)
	return p, g, err
}

// plan loads the demo plan with quick retries and a short idle timeout.
func (s *stand) plan(extra map[string]string) (*engine.Plan, *engine.Graph) {
	s.t.Helper()
	return s.planWith(steps.Options{
		Fetch: fetch.New("rootfsctl/test", fetch.WithRetries(3, 10*time.Millisecond), fetch.WithIdleTimeout(300*time.Millisecond)),
		Cache: mustCache(s.t),
	}, extra)
}

// planWith loads the demo plan with the given step options.
func (s *stand) planWith(opts steps.Options, extra map[string]string) (*engine.Plan, *engine.Graph) {
	s.t.Helper()
	p, g, err := s.load(opts, extra)
	if err != nil {
		s.t.Fatal(err)
	}
	return p, g
}

// run applies (or with checkOnly, plans) the demo plan with extra vars.
func (s *stand) run(extra map[string]string, checkOnly bool) *engine.Report {
	s.t.Helper()
	_, g := s.plan(extra)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), CheckOnly: checkOnly, LockDir: s.lockDir})
	if err != nil {
		s.t.Fatal(err)
	}
	return rep
}

// apply runs the demo plan with extra vars and the given cache, for tests
// that share a cache between runs or run from several goroutines (it
// reports errors instead of failing the test).
func (s *stand) apply(c *cache.Cache, log zerolog.Logger, extra map[string]string) (*engine.Report, error) {
	_, g, err := s.load(steps.Options{Fetch: fetch.New("t", fetch.WithRetries(2, time.Millisecond)), Cache: c}, extra)
	if err != nil {
		return nil, err
	}
	return engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: log, LockDir: s.lockDir})
}

// publish writes a gzipped tarball of entries at rel in the stand's mirror
// with a checksum file (suffix: the upstream's, .sha256 or .sha256sum).
func (s *stand) publish(rel, suffix string, entries []fixture.Entry) {
	s.t.Helper()
	if err := fixture.Publish(s.mirrorDir, rel, suffix, fixture.Tarball(entries)); err != nil {
		s.t.Fatal(err)
	}
}

// keep saves files of the mirror and returns what puts them back.
func (s *stand) keep(rels ...string) func() {
	s.t.Helper()
	saved := map[string][]byte{}
	for _, rel := range rels {
		saved[rel] = []byte(readFile(s.t, filepath.Join(s.mirrorDir, rel)))
	}
	return func() {
		for rel, b := range saved {
			if err := os.WriteFile(filepath.Join(s.mirrorDir, rel), b, 0o644); err != nil {
				s.t.Fatal(err)
			}
		}
	}
}

// quietRegistry is an in-process registry that logs nothing.
func quietRegistry() http.Handler { return registry.New(registry.Logger(log.New(io.Discard, "", 0))) }

// newRegistry starts another in-process registry and returns its host:port.
func newRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(quietRegistry())
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushIndex pushes idx to a registry as ref.
func pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}
