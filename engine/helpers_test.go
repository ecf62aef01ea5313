package engine_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// testHost is a fixed set of host facts, so messages and goldens do not
// depend on the machine running the tests.
var testHost = engine.Host{Arch: "amd64", OS: "linux", Hostname: "node1", Kernel: "6.1.0-test"}

// probeParams configure the probe step, a step type defined by the tests to
// observe the scheduler exactly: concurrency, cancellation, panics.
type probeParams struct {
	Hold     engine.Duration `yaml:"hold" jsonschema_description:"How long Apply takes."`
	Fail     bool            `yaml:"fail"`
	Perm     bool            `yaml:"permanent"`
	Panic    bool            `yaml:"panic"`
	Block    bool            `yaml:"block" jsonschema_description:"Apply waits for cancellation."`
	UpToDate bool            `yaml:"upToDate"`
}

// tracker records what probe steps did.
type tracker struct {
	mu       sync.Mutex
	running  int
	peak     int
	started  []string
	attempts map[string]int
	blocked  chan string // receives the id of each probe that starts blocking
}

func newTracker() *tracker {
	return &tracker{attempts: map[string]int{}, blocked: make(chan string, 100)}
}

type probe struct {
	id string
	p  probeParams
	t  *tracker
}

func (s *probe) Check(context.Context) (engine.Change, error) {
	if s.p.UpToDate {
		return engine.UpToDate("probe is up to date"), nil
	}
	return engine.NeedsChange("probe always changes"), nil
}

func (s *probe) Apply(ctx context.Context) error {
	s.t.mu.Lock()
	s.t.running++
	s.t.peak = max(s.t.peak, s.t.running)
	s.t.started = append(s.t.started, s.id)
	s.t.attempts[s.id]++
	s.t.mu.Unlock()
	defer func() {
		s.t.mu.Lock()
		s.t.running--
		s.t.mu.Unlock()
	}()
	if s.p.Panic {
		panic("probe " + s.id + " exploded")
	}
	if s.p.Block {
		s.t.blocked <- s.id
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(time.Duration(s.p.Hold)):
	case <-ctx.Done():
		return ctx.Err()
	}
	switch {
	case s.p.Perm:
		return engine.Permanent(errors.New("probe failed for good"))
	case s.p.Fail:
		return errors.New("probe failed")
	}
	return nil
}

// newRegistry returns the built-in step types plus a probe bound to tr.
func newRegistry(tr *tracker) *engine.Registry {
	reg := engine.NewRegistry()
	steps.Register(reg, steps.Options{})
	engine.Register(reg, engine.StepType{Name: "probe", Summary: "Test step."}, probeParams{}, func(id string, p *probeParams) (engine.Step, error) {
		return &probe{id: id, p: *p, t: tr}, nil
	})
	return reg
}

// loadString parses a plan written by a test, failing the test on any problem.
func loadString(t *testing.T, reg *engine.Registry, src string, vars map[string]string) (*engine.Plan, *engine.Graph) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := engine.Load(file, engine.LoadOptions{Registry: reg, Host: testHost, Vars: vars})
	if err != nil {
		t.Fatalf("Load(): unexpected error:\n%v", err)
	}
	g, err := engine.NewGraph(p)
	if err != nil {
		t.Fatalf("NewGraph(): %v", err)
	}
	return p, g
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got:\n%s\n--- want:\n%s", name, got, want)
	}
}
