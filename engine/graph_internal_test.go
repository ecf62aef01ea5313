package engine

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// TestAncestorsAgree: heimdalr's DAG and the linear walk over needs give
// the same ancestors for random plans, so the switch between them at
// maxDAGSteps changes no answer.
func TestAncestorsAgree(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 5))
	reg := noopRegistry()
	for round := range 40 {
		n := 2 + rng.IntN(150)
		var b strings.Builder
		b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: r\nsteps:\n")
		for i := range n {
			var needs []string
			for j := range i {
				if rng.IntN(n) < 3 {
					needs = append(needs, fmt.Sprintf("s%d", j))
				}
			}
			fmt.Fprintf(&b, "  s%d: {type: noop, needs: [%s]}\n", i, strings.Join(needs, ", "))
		}
		p, err := Parse("r.yaml", []byte(b.String()), LoadOptions{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		g, err := NewGraph(p)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			target := fmt.Sprintf("s%d", rng.IntN(n))
			viaDAG, err := g.ancestors(target)
			if err != nil {
				t.Fatal(err)
			}
			viaWalk := g.walkNeeds(target)
			sort.Strings(viaDAG)
			sort.Strings(viaWalk)
			if strings.Join(viaDAG, ",") != strings.Join(viaWalk, ",") {
				t.Fatalf("round %d, target %s: heimdalr says %v, the walk %v", round, target, viaDAG, viaWalk)
			}
		}
	}
}

// noopRegistry knows one step type, noop, whose steps do nothing.
func noopRegistry() *Registry {
	reg := NewRegistry()
	Register(reg, StepType{Name: "noop"}, struct{}{}, func(string, *struct{}) (Step, error) { return nil, nil })
	return reg
}
