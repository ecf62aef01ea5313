package engine_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
)

func loadGraphPlan(t *testing.T) (*engine.Plan, *engine.Graph) {
	t.Helper()
	p, err := engine.Load("testdata/valid/graph.yaml", engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	g, err := engine.NewGraph(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, g
}

func TestGraphRender(t *testing.T) {
	t.Parallel()
	_, g := loadGraphPlan(t)
	for _, f := range []engine.Format{engine.FormatText, engine.FormatDOT, engine.FormatMermaid, engine.FormatJSON} {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			if err := g.Render(&buf, f); err != nil {
				t.Fatalf("Render(%s): %v", f, err)
			}
			checkGolden(t, "graph/diamond."+string(f), buf.Bytes())
		})
	}
	if err := g.Render(&bytes.Buffer{}, "svg"); err == nil {
		t.Error("Render(svg): got nil error, want unknown format")
	}
}

// TestGraphDOTRenders feeds the DOT output to Graphviz, the tool users pipe it to.
func TestGraphDOTRenders(t *testing.T) {
	t.Parallel()
	dot, err := exec.LookPath("dot")
	if err != nil {
		skipOrFail(t, "graphviz's dot is not installed (apt-get install graphviz; .ci/run installs it)")
	}
	_, g := loadGraphPlan(t)
	var buf bytes.Buffer
	if err := g.Render(&buf, engine.FormatDOT); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("<svg")) {
		t.Fatalf("dot -Tsvg: %v\n%s", err, out)
	}
	if bytes.Contains(out, []byte("Warning")) || bytes.Contains(out, []byte("Error")) {
		t.Errorf("dot -Tsvg complained:\n%s", out)
	}
}

func TestGraphOrderAndSelect(t *testing.T) {
	t.Parallel()
	_, g := loadGraphPlan(t)
	if got, want := g.Order(), []string{"start", "left", "right", "end", "lonely"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Order(): got %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name    string
		targets []string
		want    []string
	}{
		{"none selects all", nil, []string{"start", "left", "right", "end", "lonely"}},
		{"leaf pulls its ancestors", []string{"left"}, []string{"start", "left"}},
		{"two targets", []string{"end", "lonely"}, []string{"start", "left", "right", "end", "lonely"}},
		{"root alone", []string{"start"}, []string{"start"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := g.Select(tc.targets)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Select(%v): got %v, want %v", tc.targets, got, tc.want)
			}
		})
	}
	_, err := g.Select([]string{"lonley"})
	var ut *engine.UnknownTargetError
	if !errors.As(err, &ut) || ut.Target != "lonley" || err.Error() != `no step "lonley" in the plan (did you mean "lonely"?)` {
		t.Errorf("Select(unknown): got %v, want an *UnknownTargetError with a suggestion", err)
	}
}

// skipOrFail skips a test whose tool is missing on a developer machine, but
// fails it under CI (CI=true), where .ci/run must have installed the tool.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run this test: %s", why)
	}
	t.Skip(why)
}
