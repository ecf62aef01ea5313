package engine_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
)

// FuzzParse: any input yields either a plan whose graph builds, or
// diagnostics that all carry a position; never a panic.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(varsPlan))
	f.Add([]byte("apiVersion: rootfsctl/v1\nkind: Plan\nname: x\nsteps: {a: {type: run, with: {command: [\"${x\"]}}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	reg := newRegistry(newTracker())
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := engine.Parse("fuzz.yaml", data, engine.LoadOptions{Registry: reg, Host: testHost})
		if err != nil {
			var ds engine.Diagnostics
			if !errors.As(err, &ds) || len(ds) == 0 {
				t.Fatalf("Parse(): error %v is not a non-empty Diagnostics", err)
			}
			for _, d := range ds {
				if d.Line < 1 || d.Col < 1 || d.File != "fuzz.yaml" || d.Message == "" {
					t.Fatalf("Parse(): diagnostic without position or message: %+v", d)
				}
			}
			return
		}
		g, err := engine.NewGraph(p)
		if err != nil {
			t.Fatalf("NewGraph() on a valid plan: %v", err)
		}
		if len(g.Order()) != len(p.Steps) {
			t.Fatalf("Order() has %d steps, plan has %d", len(g.Order()), len(p.Steps))
		}
	})
}
