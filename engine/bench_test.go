package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
)

// layeredPlan generates a plan of n steps in layers of width steps; every
// step after the first layer needs 3 steps of the layer before it. Deep and
// narrow is the hard case for graph building (ancestor sets grow with depth).
func layeredPlan(n, width int, stepType string) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: layered\nvars:\n  root: /tmp/rootfsctl-bench\nsteps:\n")
	for i := 0; i < n; i++ {
		layer, pos := i/width, i%width
		fmt.Fprintf(&b, "  s%d:\n    type: %s\n", i, stepType)
		if layer > 0 {
			prev := (layer - 1) * width
			fmt.Fprintf(&b, "    needs: [s%d, s%d, s%d]\n", prev+pos, prev+(pos+1)%width, prev+(pos+2)%width)
		}
		switch stepType {
		case "run":
			fmt.Fprintf(&b, "    with: {command: [\"true\"], creates: \"${root}/s%d\"}\n", i)
		case "probe":
			b.WriteString("    with: {upToDate: true}\n")
		}
	}
	return []byte(b.String())
}

// BenchmarkLoadValidateGraph measures parse + validate + graph build, what
// `rootfsctl validate` does per file. Goals: 1,000 steps < 250 ms, 10,000 < 3 s.
func BenchmarkLoadValidateGraph(b *testing.B) {
	reg := newRegistry(newTracker())
	for _, n := range []int{100, 1000, 10000} {
		for _, width := range []int{10, 100} {
			if width >= n {
				continue
			}
			src := layeredPlan(n, width, "run")
			b.Run(fmt.Sprintf("steps=%d/width=%d", n, width), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p, err := engine.Parse("layered.yaml", src, engine.LoadOptions{Registry: reg, Host: testHost})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := engine.NewGraph(p); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/step")
			})
		}
	}
}

// BenchmarkSchedulerOverhead runs plans whose steps are all up to date, so
// the time is the scheduler's own: ready queue, goroutines, results, logging.
func BenchmarkSchedulerOverhead(b *testing.B) {
	reg := newRegistry(newTracker())
	for _, n := range []int{1000, 10000} {
		p, err := engine.Parse("layered.yaml", layeredPlan(n, 10, "probe"), engine.LoadOptions{Registry: reg, Host: testHost})
		if err != nil {
			b.Fatal(err)
		}
		g, err := engine.NewGraph(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("steps=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
				if err != nil || rep.Failed() {
					b.Fatalf("Run(): %v %s", err, rep.Summary())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/step")
		})
	}
}

// BenchmarkTargetSelect measures --target on a fresh graph: filling the
// heimdalr DAG (its closure caches) and one ancestor query. Only runs that
// select targets pay this.
func BenchmarkTargetSelect(b *testing.B) {
	reg := newRegistry(newTracker())
	for _, n := range []int{1000, 10000} {
		for _, width := range []int{10, 100} {
			p, err := engine.Parse("layered.yaml", layeredPlan(n, width, "probe"), engine.LoadOptions{Registry: reg, Host: testHost})
			if err != nil {
				b.Fatal(err)
			}
			target := fmt.Sprintf("s%d", n-1)
			b.Run(fmt.Sprintf("steps=%d/width=%d", n, width), func(b *testing.B) {
				for b.Loop() {
					g, err := engine.NewGraph(p)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := g.Select([]string{target}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
