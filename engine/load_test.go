package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestInvalidPlans checks the messages for a corpus of broken plans against
// a golden file, and that every file in the corpus is rejected.
func TestInvalidPlans(t *testing.T) {
	t.Parallel()
	reg := newRegistry(newTracker())
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid plans found: %v", err)
	}
	sort.Strings(files)
	var out bytes.Buffer
	for _, f := range files {
		p, err := engine.Load(f, engine.LoadOptions{Registry: reg, Host: testHost})
		var ds engine.Diagnostics
		if !errors.As(err, &ds) {
			t.Errorf("Load(%s): got plan %v, error %v; want Diagnostics", f, p, err)
			continue
		}
		for _, d := range ds {
			if d.Line == 0 || d.Col == 0 {
				t.Errorf("Load(%s): diagnostic without a position: %s", f, d)
			}
		}
		if err := ds.WriteText(&out); err != nil {
			t.Fatal(err)
		}
	}
	checkGolden(t, "invalid.golden", out.Bytes())
}

func TestDiagnosticsFormats(t *testing.T) {
	t.Parallel()
	ds := engine.Diagnostics{
		{Pos: engine.Pos{File: "b.yaml", Line: 2, Col: 1}, Message: "second, with a comma: and colon"},
		{Pos: engine.Pos{File: "a.yaml", Line: 9, Col: 3}, Message: "first\nline two"},
		{Pos: engine.Pos{File: "b.yaml", Line: 2, Col: 1}, Message: "second, with a comma: and colon"},
	}.Sort()
	if len(ds) != 2 {
		t.Fatalf("Sort(): got %d diagnostics, want 2 (duplicates dropped)", len(ds))
	}
	var gh bytes.Buffer
	if err := ds.WriteGitHub(&gh); err != nil {
		t.Fatal(err)
	}
	want := "::error file=a.yaml,line=9,col=3::first%0Aline two\n" +
		"::error file=b.yaml,line=2,col=1::second, with a comma: and colon\n"
	if gh.String() != want {
		t.Errorf("WriteGitHub(): got\n%s\nwant\n%s", gh.String(), want)
	}
	var js bytes.Buffer
	if err := (engine.Diagnostics(nil)).WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(js.String()) != "[]" {
		t.Errorf("WriteJSON(nil): got %q, want []", js.String())
	}
}

const varsPlan = `apiVersion: rootfsctl/v1
kind: Plan
name: vars-demo
vars:
  machine: kube1
  machineDir: /var/lib/machines/${machine}
  arch: ${host.arch}
  greeting: hello
defaults:
  timeout: 15m
  retry: {attempts: 3, delay: 2s, maxDelay: 30s}
steps:
  hostname:
    <<: &base {type: file}
    with:
      path: ${machineDir}/etc/hostname
      content: "${greeting} ${host.hostname} ${arch} $${literal} costs $5"
      mode: 0600
  list:
    type: run
    needs: [hostname]
    timeout: 2m
    retry: {attempts: 2}
    with:
      command: [ls, "${plan.dir}", "${host.kernel}"]
      env: {MACHINE: "${machine}"}
`

func TestLoadExpandsVariables(t *testing.T) {
	t.Parallel()
	reg := newRegistry(newTracker())
	t.Run("declared values", func(t *testing.T) {
		p, _ := loadString(t, reg, varsPlan, nil)
		fp := p.Steps[0].Params.(*steps.FileParams)
		if fp.Path != "/var/lib/machines/kube1/etc/hostname" {
			t.Errorf("path: got %q", fp.Path)
		}
		if want := "hello node1 amd64 ${literal} costs $5"; fp.Content != want {
			t.Errorf("content: got %q, want %q", fp.Content, want)
		}
		if fp.Mode != 0o600 {
			t.Errorf("mode: got %o, want 600", fp.Mode)
		}
		rp := p.Steps[1].Params.(*steps.RunParams)
		if rp.Command[1] != p.Dir || rp.Command[2] != testHost.Kernel {
			t.Errorf("command: got %q, want plan dir %q and kernel %q", rp.Command, p.Dir, testHost.Kernel)
		}
		if rp.Env["MACHINE"] != "kube1" {
			t.Errorf("env: got %v", rp.Env)
		}
		if p.Vars["machineDir"] != "/var/lib/machines/kube1" {
			t.Errorf("Vars[machineDir]: got %q", p.Vars["machineDir"])
		}
	})
	t.Run("overrides reach dependent vars and built-ins", func(t *testing.T) {
		p, _ := loadString(t, reg, varsPlan, map[string]string{"machine": "kube2", "host.arch": "arm64"})
		fp := p.Steps[0].Params.(*steps.FileParams)
		if fp.Path != "/var/lib/machines/kube2/etc/hostname" {
			t.Errorf("path: got %q", fp.Path)
		}
		if !strings.Contains(fp.Content, " arm64 ") {
			t.Errorf("content: got %q, want the overridden arch", fp.Content)
		}
	})
	t.Run("defaults and own settings", func(t *testing.T) {
		p, _ := loadString(t, reg, varsPlan, nil)
		h, l := p.Steps[0], p.Steps[1]
		if h.Timeout != 15*time.Minute || h.Retry.Attempts != 3 || time.Duration(h.Retry.Delay) != 2*time.Second {
			t.Errorf("hostname: got timeout %v retry %+v, want the plan defaults", h.Timeout, h.Retry)
		}
		if l.Timeout != 2*time.Minute || l.Retry.Attempts != 2 || time.Duration(l.Retry.Delay) != time.Second {
			t.Errorf("list: got timeout %v retry %+v, want its own with built-in delay", l.Timeout, l.Retry)
		}
	})
	t.Run("unknown override", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "plan.yaml")
		if err := os.WriteFile(file, []byte(varsPlan), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := engine.Load(file, engine.LoadOptions{Registry: reg, Host: testHost, Vars: map[string]string{"machin": "x"}})
		if err == nil || !strings.Contains(err.Error(), `override machin: the plan declares no variable "machin" (did you mean "machine"?)`) {
			t.Errorf("Load(): got %v, want an unknown --var error with a suggestion", err)
		}
	})
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := engine.Load(filepath.Join(t.TempDir(), "nope.yaml"), engine.LoadOptions{})
	var ds engine.Diagnostics
	if err == nil || errors.As(err, &ds) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing): got %v, want a wrapped not-exist error", err)
	}
}

// TestAliasBomb: a document whose aliases expand exponentially is refused
// quickly with a positioned error instead of exhausting memory.
func TestAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: bomb\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("steps:\n  a:\n    type: run\n    with: {command: *l8}\n")
	_, err := engine.Parse("bomb.yaml", []byte(b.String()), engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost})
	if err == nil || !strings.Contains(err.Error(), "plan expands to more than 1000000 YAML nodes") {
		t.Fatalf("Parse(alias bomb): got %v, want the node budget error", err)
	}
}

// TestLongLiteralValue: the 1 MiB bound holds for a value written out as
// for one that expands to that much.
func TestLongLiteralValue(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", engine.MaxValueBytesForTest+1)
	src := "apiVersion: rootfsctl/v1\nkind: Plan\nname: long\nsteps:\n  a:\n    type: file\n    with: {path: /tmp/x, content: " + long + "}\n"
	_, err := engine.Parse("long.yaml", []byte(src), engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost})
	if err == nil || !strings.Contains(err.Error(), "a.with.content: the value is longer than 1 MiB") {
		t.Errorf("Parse(): got %v, want the value refused", err)
	}
}

// TestMergeKeyFanOut: merge keys that fan out over nested anchors (a
// 1 KB plan whose naive expansion is 20^8 mappings) are loaded in bounded
// time, as the alias budget promises.
func TestMergeKeyFanOut(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: fan\nx-a0: &a0 {k: v}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "x-a%d: &a%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 20), ", "))
	}
	b.WriteString("vars: {<<: *a8}\nsteps:\n  a: {type: run, with: {command: [\"true\"]}}\n")
	done := make(chan error, 1)
	go func() {
		_, err := engine.Parse("fan.yaml", []byte(b.String()), engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Parse(): %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Parse() of a 1 KB plan with fanned-out merge keys did not finish")
	}
}

// TestManyCyclesAreReportedBriefly: a plan with as many dependency cycles
// as steps gets a bounded report, with long cycles shortened.
func TestManyCyclesAreReportedBriefly(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: cycles\nsteps:\n")
	const n = 8000
	for i := range n - 1 {
		fmt.Fprintf(&b, "  s%d: {type: run, needs: [s%d, s0], with: {command: [\"true\"]}}\n", i, i+1)
	}
	fmt.Fprintf(&b, "  s%d: {type: run, needs: [s0], with: {command: [\"true\"]}}\n", n-1)
	_, err := engine.Parse("cycles.yaml", []byte(b.String()), engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost})
	var ds engine.Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("Parse(): %v, want diagnostics", err)
	}
	rest := false
	for _, d := range ds {
		rest = rest || strings.Contains(d.Message, "more dependency cycles (fix the ones above first)")
	}
	if len(ds) > 22 || !rest { // 20 cycles, the rest counted, and s0 needing itself
		t.Errorf("%d diagnostics; want at most 22, one of them counting the rest:\n%v", len(ds), ds)
	}
	for _, d := range ds {
		if len(d.Message) > 400 {
			t.Errorf("a %d-byte message: %.200s…", len(d.Message), d.Message)
		}
	}
}

// TestHugeNamesGetNoSuggestion: "did you mean" compares names pairwise; a
// plan of two 100 KB names is still validated at once.
func TestHugeNamesGetNoSuggestion(t *testing.T) {
	t.Parallel()
	a, b := strings.Repeat("a", 100_000), strings.Repeat("b", 100_000)
	src := "apiVersion: rootfsctl/v1\nkind: Plan\nname: long\nvars:\n  ? " + a + "\n  : x\nsteps:\n  s:\n    type: run\n    with:\n      command: [\"${" + b + "}\"]\n"
	done := make(chan error, 1)
	go func() {
		_, err := engine.Parse("long.yaml", []byte(src), engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "undefined variable") {
			t.Errorf("Parse(): %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Parse() with two 100 KB names did not finish")
	}
}

// TestTotalExpansionBound holds the README's 32 MiB bound on a plan's
// expanded values together: a 512 KiB variable used 70 times (35 MiB) is
// refused once, with the bound named; used 56 times (28 MiB) it loads.
func TestTotalExpansionBound(t *testing.T) {
	t.Parallel()
	plan := func(uses int) string {
		var b strings.Builder
		b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: wide\nvars:\n  v: " + strings.Repeat("x", 512<<10) + "\nsteps:\n")
		for i := range uses {
			fmt.Fprintf(&b, "  s%d: {type: file, with: {path: /tmp/x%d, content: \"${v}\"}}\n", i, i)
		}
		return b.String()
	}
	opts := engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost}
	if _, err := engine.Parse("wide.yaml", []byte(plan(56)), opts); err != nil {
		t.Errorf("28 MiB of values: %v, want it loaded", err)
	}
	_, err := engine.Parse("wide.yaml", []byte(plan(70)), opts)
	if err == nil || strings.Count(err.Error(), "plan expands to more than 32 MiB of values") != 1 {
		t.Errorf("35 MiB of values: got %v, want one error naming the 32 MiB bound", err)
	}
}
