package engine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// With every step starting as soon as its needs end (no budget), the
// critical path found by walking back is a longest path of the DAG by
// duration, and a chain of needs: checked against a dynamic programme over
// random DAGs with distinct durations.
func TestCriticalPathIsTheLongestChain(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	reg := noopRegistry()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for round := range 300 {
		n := 1 + rng.IntN(40)
		var b strings.Builder
		b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: r\nsteps:\n")
		needs := make([][]int, n)
		for i := range n {
			var ns []string
			for j := range i {
				if rng.IntN(i+1) < 2 {
					needs[i] = append(needs[i], j)
					ns = append(ns, fmt.Sprintf("s%d", j))
				}
			}
			fmt.Fprintf(&b, "  s%d: {type: noop, needs: [%s]}\n", i, strings.Join(ns, ", "))
		}
		p, err := Parse("r.yaml", []byte(b.String()), LoadOptions{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		// an ASAP schedule: distinct durations, so the longest chain is unique
		perm := rng.Perm(n)
		dur := make([]time.Duration, n)
		end := make([]time.Duration, n)
		longest := make([]time.Duration, n) // longest chain ending at i
		steps := make([]StepResult, n)
		for i := range n {
			dur[i] = time.Duration(perm[i]+1) * time.Millisecond
			var start, best time.Duration
			for _, j := range needs[i] {
				start = max(start, end[j])
				best = max(best, longest[j])
			}
			end[i] = start + dur[i]
			longest[i] = best + dur[i]
			steps[i] = StepResult{ID: fmt.Sprintf("s%d", i), Started: t0.Add(start), Duration: Millis(dur[i]), Attempts: 1}
		}
		var want, total time.Duration
		for i := range n {
			want = max(want, longest[i])
			total = max(total, end[i])
		}
		path := criticalPath(p, steps, total)
		var got time.Duration
		for k, s := range path {
			got += time.Duration(s.Duration)
			if k > 0 && !contains(p.byID[s.ID].Needs, path[k-1].ID) {
				t.Fatalf("round %d: %s does not need %s: %v", round, s.ID, path[k-1].ID, path)
			}
		}
		if got != want || got != total {
			t.Fatalf("round %d: critical path %v sums to %s; longest chain %s, run %s", round, path, got, want, total)
		}
	}
}
