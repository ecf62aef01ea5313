package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
)

type chromeTrace struct {
	TraceEvents []struct {
		Name string         `json:"name"`
		Ph   string         `json:"ph"`
		Ts   float64        `json:"ts"`
		Dur  float64        `json:"dur"`
		Pid  int            `json:"pid"`
		Tid  int            `json:"tid"`
		Args map[string]any `json:"args"`
	} `json:"traceEvents"`
	DisplayTimeUnit string         `json:"displayTimeUnit"`
	OtherData       map[string]any `json:"otherData"`
}

type span struct {
	name       string
	start, end float64
	args       map[string]any
}

// parseTrace reads a Chrome trace and returns its spans by track name,
// failing on any event a trace viewer would misplace: a span on an unnamed
// track, or two spans on one track that overlap without one holding the
// other.
func parseTrace(t *testing.T, data []byte) (map[string][]span, chromeTrace) {
	t.Helper()
	var tr chromeTrace
	if err := json.Unmarshal(data, &tr); err != nil {
		t.Fatalf("not a trace: %v\n%.300s", err, data)
	}
	names := map[int]string{}
	for _, e := range tr.TraceEvents {
		if e.Ph == "M" && e.Name == "thread_name" {
			names[e.Tid] = e.Args["name"].(string)
		}
	}
	tracks := map[string][]span{}
	for _, e := range tr.TraceEvents {
		if e.Ph != "X" {
			continue
		}
		name, ok := names[e.Tid]
		if !ok || e.Pid != 1 || e.Dur < 0 {
			t.Fatalf("span %q: tid %d unnamed or bad pid/dur: %+v", e.Name, e.Tid, e)
		}
		tracks[name] = append(tracks[name], span{e.Name, e.Ts, e.Ts + e.Dur, e.Args})
	}
	for name, ss := range tracks {
		// by start, the enclosing first; a stack of the spans still open
		sorted := append([]span(nil), ss...)
		sort.Slice(sorted, func(i, j int) bool {
			if sorted[i].start != sorted[j].start {
				return sorted[i].start < sorted[j].start
			}
			return sorted[i].end > sorted[j].end
		})
		var stack []span
		for _, b := range sorted {
			for len(stack) > 0 && stack[len(stack)-1].end <= b.start {
				stack = stack[:len(stack)-1]
			}
			if n := len(stack); n > 0 && b.end > stack[n-1].end {
				a := stack[n-1]
				t.Errorf("track %q: spans %q [%.0f, %.0f] and %q [%.0f, %.0f] overlap without nesting", name, a.name, a.start, a.end, b.name, b.start, b.end)
			}
			stack = append(stack, b)
		}
	}
	return tracks, tr
}

// An apply's trace has the apply's phases in order on one track, each step
// on its own track with its checks, attempts and status, and each
// transfer on a track of its own; the report names the critical path.
func TestTraceOfAnApply(t *testing.T) {
	t.Parallel()
	src := header + `failurePolicy: keep-going
steps:
  a: {type: probe, with: {hold: 40ms}}
  b: {type: probe, needs: [a], with: {hold: 30ms}}
  c: {type: probe, with: {hold: 5ms}}
  d: {type: probe, needs: [b, c], with: {fail: true}}
  e: {type: probe, needs: [d]}
  f: {type: probe, with: {upToDate: true}}
`
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	tracer := engine.NewTracer()
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), Trace: tracer,
		Preflight: &engine.PreflightOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tracer.WriteChrome(&buf, "test"); err != nil {
		t.Fatal(err)
	}
	tracks, tr := parseTrace(t, buf.Bytes())
	if tr.DisplayTimeUnit != "ms" || tr.OtherData["droppedEvents"] != float64(0) {
		t.Errorf("displayTimeUnit %q, otherData %v", tr.DisplayTimeUnit, tr.OtherData)
	}
	var phases []string
	for _, s := range tracks["apply"] {
		phases = append(phases, s.name)
	}
	if got, want := fmt.Sprint(phases), "[lock before check preflight run after]"; got != want {
		t.Errorf("apply track: %s, want %s", got, want)
	}
	for _, r := range rep.Steps {
		ss := tracks["step "+r.ID]
		whole := r.ID + " (" + string(r.Status) + ")"
		var found, checks, attempts int
		for _, s := range ss {
			switch s.name {
			case whole:
				found++
				if s.args["status"] != string(r.Status) {
					t.Errorf("%s: status %v in the trace, %s in the report", r.ID, s.args["status"], r.Status)
				}
			case "check":
				checks++
			case "attempt":
				attempts++
			}
		}
		ran := r.Attempts > 0
		if ran && (found != 1 || attempts != r.Attempts) || !ran && found != 0 || checks < 1 {
			t.Errorf("step %s (%s, %d attempts): %d whole spans, %d attempts, %d checks: %+v", r.ID, r.Status, r.Attempts, found, attempts, checks, ss)
		}
	}
	var path []string
	for _, s := range rep.CriticalPath {
		path = append(path, s.ID)
		if s.Share <= 0 || s.Share > 1 {
			t.Errorf("critical path %s: share %v", s.ID, s.Share)
		}
	}
	if got := fmt.Sprint(path); got != "[a b d]" {
		t.Errorf("critical path %s, want [a b d] (e was blocked, c was shorter than a then b)", got)
	}
	if line := rep.CriticalPathLine(); line == "" {
		t.Error("no critical path line")
	}
}

// Transfers get a track each, also two of the same name at once, and
// their spans carry the bytes moved.
func TestTraceTransfers(t *testing.T) {
	t.Parallel()
	tracer := engine.NewTracer()
	prog := engine.TracingProgress(tracer, "s")
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := prog.Track("layer", 100)
			<-start
			tr.Add(int64(10 * (i + 1)))
			tr.Add(1)
			tr.Done()
			tr.Done() // twice: one span
		}()
	}
	// all three are open before any ends
	for len(tracer.OpenTransfers("layer")) < 3 {
		time.Sleep(time.Millisecond)
	}
	close(start)
	wg.Wait()
	var buf bytes.Buffer
	if err := tracer.WriteChrome(&buf, "t"); err != nil {
		t.Fatal(err)
	}
	tracks, _ := parseTrace(t, buf.Bytes())
	got := map[float64]bool{}
	for _, name := range []string{"transfer layer", "transfer layer (2)", "transfer layer (3)"} {
		ss := tracks[name]
		if len(ss) != 1 || ss[0].args["step"] != "s" || ss[0].args["totalBytes"] != float64(100) {
			t.Fatalf("track %q: %+v", name, ss)
		}
		got[ss[0].args["bytes"].(float64)] = true
	}
	if !got[11] || !got[21] || !got[31] {
		t.Errorf("bytes per transfer: %v, want 11, 21 and 31", got)
	}
	// the numbering is of transfers in flight: a later one reuses the name
	prog.Track("layer", -1).Done()
	buf.Reset()
	_ = tracer.WriteChrome(&buf, "t")
	tracks, _ = parseTrace(t, buf.Bytes())
	if len(tracks["transfer layer"]) != 2 {
		t.Errorf("a later transfer of the same name: %d spans on its track, want 2", len(tracks["transfer layer"]))
	}
}

// A trace holds at most MaxTraceEvents spans and says how many it dropped;
// the spans it keeps are the first to begin, so the phases and steps that
// hold the others survive. A span still open when the trace is written
// (an interrupted run) ends there, marked unfinished.
func TestTraceBounded(t *testing.T) {
	t.Parallel()
	tracer := engine.NewTracer()
	endOuter := tracer.Begin("apply", "run", nil)
	tracer.Begin("step a", "never ends", nil)
	for range engine.MaxTraceEvents + 5 {
		tracer.Begin("x", "s", nil)(nil)
	}
	endOuter(nil)
	var buf bytes.Buffer
	if err := tracer.WriteChrome(&buf, "t"); err != nil {
		t.Fatal(err)
	}
	tracks, tr := parseTrace(t, buf.Bytes())
	if tr.OtherData["droppedEvents"] != float64(7) {
		t.Errorf("droppedEvents %v, want 7", tr.OtherData["droppedEvents"])
	}
	if len(tracks["apply"]) != 1 || tracks["apply"][0].name != "run" {
		t.Errorf("the outer span was dropped: %v", tracks["apply"])
	}
	if ss := tracks["step a"]; len(ss) != 1 || ss[0].args["unfinished"] != true {
		t.Errorf("open span: %+v", ss)
	}
}

// A transfer takes the first row of its name that is free: three
// same-named transfers that overlap in a chain never share a row.
func TestTraceTransferRows(t *testing.T) {
	t.Parallel()
	tracer := engine.NewTracer()
	prog := engine.TracingProgress(tracer, "s")
	a := prog.Track("kubelet", 1)
	b := prog.Track("kubelet", 1)
	a.Done()
	c := prog.Track("kubelet", 1) // a's row is free again, b's is not
	b.Done()
	c.Done()
	var buf bytes.Buffer
	if err := tracer.WriteChrome(&buf, "t"); err != nil {
		t.Fatal(err)
	}
	tracks, _ := parseTrace(t, buf.Bytes()) // fails on spans that overlap on one row
	if len(tracks["transfer kubelet"]) != 2 || len(tracks["transfer kubelet (2)"]) != 1 {
		t.Errorf("rows: %v", tracks)
	}
}
