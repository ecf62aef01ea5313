package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/trace"
)

// MaxTraceEvents bounds a trace's memory: spans past it are counted and
// dropped, and the trace says how many.
const MaxTraceEvents = 200_000

// Tracer records an apply's spans for `apply --trace` and writes them as a
// Chrome trace-event file (Perfetto, chrome://tracing). One track per
// phase of the apply, per step and per transfer.
type Tracer struct {
	mu      sync.Mutex
	start   time.Time
	now     func() time.Time
	tracks  map[string]int    // track name -> tid
	names   []string          // tid-1 -> name
	rows    map[string][]bool // by transfer name, which of its rows are in use
	events  []traceEvent
	dropped int
}

type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"`            // µs since the start
	Dur  *float64       `json:"dur,omitempty"` // µs, for complete events
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Args map[string]any `json:"args,omitempty"`
}

// NewTracer starts a trace now.
func NewTracer() *Tracer {
	return &Tracer{start: time.Now(), now: time.Now, tracks: map[string]int{}, rows: map[string][]bool{}}
}

// applyTrack is the track of the apply's phases.
const applyTrack = "apply"

func stepTrack(id string) string { return "step " + id }

// tid returns the track's id, adding the track in first-use order. Callers
// hold t.mu.
func (t *Tracer) tid(track string) int {
	if track == "" {
		track = applyTrack
	}
	if id, ok := t.tracks[track]; ok {
		return id
	}
	t.names = append(t.names, track)
	t.tracks[track] = len(t.names)
	return len(t.names)
}

// addTracks fixes the order of tracks: the apply's first, then the steps
// in plan order, then transfers as they start.
func (t *Tracer) addTracks(ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tid(applyTrack)
	for _, id := range ids {
		t.tid(stepTrack(id))
	}
}

func (t *Tracer) micros(at time.Time) float64 { return float64(at.Sub(t.start).Nanoseconds()) / 1e3 }

// Begin implements trace.Recorder. A span takes its place in the trace
// when it begins, so that when the trace is full it is the later, inner
// spans that are dropped, never the phases and steps that hold them.
func (t *Tracer) Begin(track, name string, args map[string]any) func(map[string]any) {
	i, ok := t.open(track, name, t.now())
	if !ok {
		return func(map[string]any) {}
	}
	var once sync.Once
	return func(more map[string]any) {
		once.Do(func() { t.close(i, "", args, more) })
	}
}

// open adds a span that has begun and returns its index; false when the
// trace is full.
func (t *Tracer) open(track, name string, start time.Time) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.events) >= MaxTraceEvents {
		t.dropped++
		return 0, false
	}
	t.events = append(t.events, traceEvent{Name: name, Cat: category(track), Ph: "X", Ts: t.micros(start), Pid: 1, Tid: t.tid(track)})
	return len(t.events) - 1, true
}

// close ends span i now, renaming it when name is set.
func (t *Tracer) close(i int, name string, args ...map[string]any) {
	end := t.micros(t.now())
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &t.events[i]
	dur := max(end-e.Ts, 0)
	e.Dur = &dur
	if name != "" {
		e.Name = name
	}
	for _, m := range args {
		for k, v := range m {
			if e.Args == nil {
				e.Args = map[string]any{}
			}
			e.Args[k] = v
		}
	}
}

func category(track string) string {
	switch {
	case track == "" || track == applyTrack:
		return "apply"
	case strings.HasPrefix(track, "step "):
		return "step"
	}
	return "transfer"
}

// transferTrack names a transfer's track: the first row of that name not
// in use, so that overlapping same-named transfers never share a row.
func (t *Tracer) transferTrack(name string) (string, func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rows := t.rows[name]
	n := 0
	for n < len(rows) && rows[n] {
		n++
	}
	if n == len(rows) {
		rows = append(rows, false)
	}
	rows[n] = true
	t.rows[name] = rows
	track := "transfer " + name
	if n > 0 {
		track = fmt.Sprintf("%s (%d)", track, n+1)
	}
	return track, func() {
		t.mu.Lock()
		t.rows[name][n] = false
		t.mu.Unlock()
	}
}

// WriteChrome writes the trace as Chrome trace-event JSON: metadata naming
// the process and every track, then the spans by start time.
func (t *Tracer) WriteChrome(w io.Writer, title string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]traceEvent, 0, len(t.events)+2*len(t.names)+1)
	out = append(out, traceEvent{Name: "process_name", Ph: "M", Pid: 1, Args: map[string]any{"name": title}})
	for i, n := range t.names {
		out = append(out, traceEvent{Name: "thread_name", Ph: "M", Pid: 1, Tid: i + 1, Args: map[string]any{"name": n}},
			traceEvent{Name: "thread_sort_index", Ph: "M", Pid: 1, Tid: i + 1, Args: map[string]any{"sort_index": i + 1}})
	}
	evs := append([]traceEvent(nil), t.events...)
	now := t.micros(t.now())
	for i := range evs {
		if evs[i].Dur == nil { // still open (an interrupted run): up to now
			dur := max(now-evs[i].Ts, 0)
			evs[i].Dur = &dur
			args := map[string]any{"unfinished": true}
			for k, v := range evs[i].Args {
				args[k] = v
			}
			evs[i].Args = args
		}
	}
	// by start; of two spans starting together, the longer (enclosing) first
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].Ts != evs[j].Ts {
			return evs[i].Ts < evs[j].Ts
		}
		return *evs[i].Dur > *evs[j].Dur
	})
	out = append(out, evs...)
	doc := struct {
		TraceEvents     []traceEvent   `json:"traceEvents"`
		DisplayTimeUnit string         `json:"displayTimeUnit"`
		OtherData       map[string]any `json:"otherData"`
	}{out, "ms", map[string]any{"tool": "rootfsctl", "started": t.start.UTC().Format(time.RFC3339Nano), "droppedEvents": t.dropped}}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

// tracingProgress gives every transfer a span on a track of its own, and
// passes the progress on.
type tracingProgress struct {
	inner Progress
	t     *Tracer
	step  string
}

func (p tracingProgress) Track(name string, total int64) Tracker {
	track, release := p.t.transferTrack(name)
	args := map[string]any{"step": p.step}
	if total >= 0 {
		args["totalBytes"] = total
	}
	end := p.t.Begin(track, name, args)
	return &tracingTracker{inner: p.inner.Track(name, total), end: end, release: release}
}

type tracingTracker struct {
	inner   Tracker
	n       atomic.Int64
	end     func(map[string]any)
	release func()
	once    sync.Once
}

func (tr *tracingTracker) Add(n int64) {
	tr.n.Add(n)
	tr.inner.Add(n)
}

func (tr *tracingTracker) Done() {
	tr.once.Do(func() {
		tr.end(map[string]any{"bytes": tr.n.Load()})
		tr.release()
	})
	tr.inner.Done()
}

// withTrace puts the tracer and the step's track in a step's context.
func withTrace(ctx context.Context, t *Tracer, id string) context.Context {
	if t == nil {
		return ctx
	}
	return trace.OnTrack(trace.With(ctx, t), stepTrack(id))
}
