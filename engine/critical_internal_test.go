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
		p, needs := randomDAG(t, rng, reg, n)
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

// With a budget of j slots (list scheduling: a step starts when its needs
// have ended and a slot is free), the critical path has no gaps: it starts
// with the run, each step starts when the one before it on the path ends
// (a need, or the step that freed the slot), and its durations add up to
// the whole run.
func TestCriticalPathThroughSlotWaits(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(21, 22))
	reg := noopRegistry()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for round := range 300 {
		n, j := 1+rng.IntN(30), 1+rng.IntN(4)
		p, needs := randomDAG(t, rng, reg, n)
		perm := rng.Perm(n)
		dur := make([]time.Duration, n)
		for i := range n {
			dur[i] = time.Duration(perm[i]+1) * 10 * time.Millisecond // ends never within the slack
		}
		start, end := listSchedule(needs, dur, j)
		steps := make([]StepResult, n)
		var total time.Duration
		for i := range n {
			steps[i] = StepResult{ID: fmt.Sprintf("s%d", i), Started: t0.Add(start[i]), Duration: Millis(dur[i]), Attempts: 1}
			total = max(total, end[i])
		}
		path := criticalPath(p, steps, total)
		var sum time.Duration
		at := t0
		for _, s := range path {
			var r StepResult
			for _, x := range steps {
				if x.ID == s.ID {
					r = x
				}
			}
			if !r.Started.Equal(at) {
				t.Fatalf("round %d (j=%d): %s starts at %s, the path before it ends at %s: %v", round, j, s.ID, r.Started.Sub(t0), at.Sub(t0), path)
			}
			at = stepEnd(r)
			sum += time.Duration(s.Duration)
		}
		if sum != total {
			t.Fatalf("round %d (j=%d): the path %v sums to %s, the run took %s", round, j, path, sum, total)
		}
	}
}

// listSchedule runs steps 0..n-1 on j slots: whenever a slot is free, the
// lowest-numbered step whose needs have all ended starts.
func listSchedule(needs [][]int, dur []time.Duration, j int) (start, end []time.Duration) {
	n := len(dur)
	start, end = make([]time.Duration, n), make([]time.Duration, n)
	state := make([]int, n) // 0 waiting, 1 running, 2 ended
	var now time.Duration
	for done := 0; done < n; {
		running := 0
		for i := range n {
			if state[i] == 1 {
				running++
			}
		}
		for i := 0; i < n && running < j; i++ {
			ready := state[i] == 0
			for _, k := range needs[i] {
				ready = ready && state[k] == 2
			}
			if ready {
				state[i], start[i], end[i] = 1, now, now+dur[i]
				running++
			}
		}
		next := time.Duration(-1)
		for i := range n {
			if state[i] == 1 && (next < 0 || end[i] < next) {
				next = end[i]
			}
		}
		now = next
		for i := range n {
			if state[i] == 1 && end[i] == now {
				state[i] = 2
				done++
			}
		}
	}
	return start, end
}

// A long path's line names its first and last steps and counts the rest;
// sub-millisecond steps keep their microseconds.
func TestCriticalPathLine(t *testing.T) {
	t.Parallel()
	r := &Report{Duration: Millis(100 * time.Millisecond)}
	for i := range 10 {
		r.CriticalPath = append(r.CriticalPath, PathStep{ID: fmt.Sprintf("s%d", i), Duration: Millis(time.Duration(i+1) * 5 * time.Microsecond), Share: 0.01})
	}
	got := r.CriticalPathLine()
	want := "critical path: s0 5µs (1%) -> s1 10µs (1%) -> s2 15µs (1%) -> (4 more) -> s7 40µs (1%) -> s8 45µs (1%) -> s9 50µs (1%); 0% of 100ms"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if (&Report{}).CriticalPathLine() != "" {
		t.Error("a run where no step ran has a critical path line")
	}
}

// randomDAG is a plan of n noop steps s0..s(n-1), each needing about two
// earlier ones at random, and the needs by index.
func randomDAG(t *testing.T, rng *rand.Rand, reg *Registry, n int) (*Plan, [][]int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: r\nsteps:\n")
	needs := make([][]int, n)
	for i := range n {
		var ns []string
		for k := range i {
			if rng.IntN(i+1) < 2 {
				needs[i] = append(needs[i], k)
				ns = append(ns, fmt.Sprintf("s%d", k))
			}
		}
		fmt.Fprintf(&b, "  s%d: {type: noop, needs: [%s]}\n", i, strings.Join(ns, ", "))
	}
	p, err := Parse("r.yaml", []byte(b.String()), LoadOptions{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return p, needs
}
