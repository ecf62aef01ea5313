package steps_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

func statusOf(rep *engine.Report) map[string]string {
	out := map[string]string{}
	for _, st := range rep.Steps {
		out[st.ID] = string(st.Status)
		if st.Error != "" {
			out[st.ID] += ": " + st.Error
		}
	}
	return out
}

func wantAll(t *testing.T, rep *engine.Report, status engine.Status) {
	t.Helper()
	for _, st := range rep.Steps {
		if st.Status != status {
			t.Errorf("step %s: %s (%s%s), want %s", st.ID, st.Status, st.Message, st.Error, status)
		}
	}
}

// manifest describes every entry under dir: type, mode, size, digest,
// symlink target. Two equal manifests mean nothing changed.
func manifest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out, err := fixture.Tree(dir, func(p string, fi fs.FileInfo) (string, error) {
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			desc += fmt.Sprint(" ", fixture.SHA256(b), " ", fi.ModTime().UnixNano())
			return desc, err
		}
		if target, err := os.Readlink(p); err == nil {
			desc += " -> " + target
		}
		return desc, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffManifests(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkGolden compares got with testdata/name; -update rewrites it.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s (go test -update creates it): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

var host = engine.Host{Arch: "amd64", OS: "linux", Hostname: "node1", Kernel: "6.1.0"}

// planHeader starts every plan a test writes.
const planHeader = "apiVersion: rootfsctl/v1\nkind: Plan\nname: t\nsteps:\n"

// parse loads a plan of stepsYAML (the block under steps:) with opts.
func parse(t *testing.T, opts steps.Options, stepsYAML string) *engine.Plan {
	t.Helper()
	reg := engine.NewRegistry()
	steps.Register(reg, opts)
	p, err := engine.Parse("t.yaml", []byte(planHeader+stepsYAML), engine.LoadOptions{Registry: reg, Host: host})
	if err != nil {
		t.Fatalf("Parse():\n%v", err)
	}
	return p
}

// applyPlan applies p, with a lock directory of its own.
func applyPlan(t *testing.T, p *engine.Plan) *engine.Report {
	t.Helper()
	g, err := engine.NewGraph(p)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
	if err != nil {
		t.Fatalf("Apply(): %v", err)
	}
	return rep
}

// build loads a one-step plan and returns the step's implementation.
func build(t *testing.T, stepYAML string) engine.Step {
	t.Helper()
	return buildWith(t, steps.Options{}, stepYAML)
}

// buildWith is build with the given step options.
func buildWith(t *testing.T, opts steps.Options, stepYAML string) engine.Step {
	t.Helper()
	return parse(t, opts, "  s:\n"+stepYAML).Steps[0].Impl
}

func ctx() context.Context { return zerolog.Nop().WithContext(context.Background()) }

func mustCheck(t *testing.T, s engine.Step, needed bool, reason string) {
	t.Helper()
	ch, err := s.Check(ctx())
	if err != nil {
		t.Fatalf("Check(): %v", err)
	}
	if ch.Needed != needed || !strings.Contains(ch.Reason, reason) {
		t.Fatalf("Check(): got %+v, want needed=%v with reason containing %q", ch, needed, reason)
	}
}

func mustCache(t *testing.T) *cache.Cache {
	t.Helper()
	return cache.New(t.TempDir())
}

// events parses JSON log lines.
func events(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// replaceStep rebuilds one step of a loaded plan from its parameters as
// changed by edit, through the plan loader (so defaults and validation
// apply as for a plan file).
func replaceStep(t *testing.T, p *engine.Plan, id string, opts steps.Options, edit func(params any)) {
	t.Helper()
	st, ok := p.Step(id)
	if !ok {
		t.Fatalf("plan has no step %s", id)
	}
	edit(st.Params)
	with, err := yaml.Marshal(st.Params)
	if err != nil {
		t.Fatal(err)
	}
	one := parse(t, opts, fmt.Sprintf("  %s:\n    type: %s\n    with:\n%s", id, st.Type, indent(string(with), "      ")))
	st.Impl = one.Steps[0].Impl
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

// hostIndependent gives the plan's workspace a bind source the test owns:
// the plan's default (/lib/modules) is missing on some hosts, and would
// turn into a warning there.
func hostIndependent(t *testing.T, p *engine.Plan, opts steps.Options) {
	t.Helper()
	bind := t.TempDir()
	replaceStep(t, p, "workspace", opts, func(params any) {
		params.(*steps.WorkspaceParams).BindReadOnly = []steps.BindPath{steps.BindPath(bind)}
	})
}

// standOptions are step options for a single quick attempt per transfer.
func standOptions(t *testing.T) steps.Options {
	return steps.Options{Fetch: fetch.New("rootfsctl/test", fetch.WithRetries(1, time.Millisecond)), Cache: mustCache(t)}
}

// table is the preflight report as the CLI prints it.
func table(rep *engine.PreflightReport) string {
	var b bytes.Buffer
	rep.WriteTable(&b)
	return b.String()
}

// runChecks runs the preflight checks of one step directly, under ctx (the
// engine would give each its own CheckTimeout).
func runChecks(ctx context.Context, t *testing.T, p *engine.Plan, id string) []engine.CheckResult {
	t.Helper()
	st, _ := p.Step(id)
	var out []engine.CheckResult
	for _, c := range st.Impl.(engine.Preflighter).Preflight() {
		out = append(out, c.Run(ctx)...)
	}
	return out
}
