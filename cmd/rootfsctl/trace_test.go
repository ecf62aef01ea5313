package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
)

// failingRun: side ends well after fetch has started however late a
// loaded machine starts it, so that fetch, which needs nothing, is not
// taken for a step that waited for side's slot (a report has only times).
const failingRun = `  fetch:
    type: run
    with: {command: [sh, -c, "sleep 0.05"]}
  build:
    type: run
    needs: [fetch]
    with: {command: [sh, -c, "exit 3"]}
  side:
    type: run
    with: {command: [sh, -c, "sleep 0.03"]}
  ship:
    type: file
    needs: [build, side]
    with: {path: "${out}/ship.txt", content: s}
`

// apply --trace writes a Chrome trace with a track per step whatever the
// outcome, and graph --report shows the same run: every step's status and
// duration, and the critical path, as the report has them.
func TestTraceAndGraphOfARun(t *testing.T) {
	dir := t.TempDir()
	plan := writePlan(t, dir, failingRun)
	report, traceFile := filepath.Join(dir, "run.json"), filepath.Join(dir, "trace.json")
	code, out, _ := cli(t, context.Background(), "apply", "--keep-going", "--report", report, "--trace", traceFile, plan)
	if code != exitFailed || !strings.Contains(out, "critical path: fetch ") || !strings.Contains(out, " -> build ") {
		t.Fatalf("apply: exit %d, want %d and the critical path fetch -> build:\n%s", code, exitFailed, out)
	}
	var tr struct {
		TraceEvents []struct {
			Name string         `json:"name"`
			Ph   string         `json:"ph"`
			Args map[string]any `json:"args"`
		} `json:"traceEvents"`
	}
	data, err := os.ReadFile(traceFile)
	if err != nil || json.Unmarshal(data, &tr) != nil {
		t.Fatalf("trace: %v\n%.300s", err, data)
	}
	tracks := map[string]bool{}
	for _, e := range tr.TraceEvents {
		if e.Ph == "M" && e.Name == "thread_name" {
			tracks[e.Args["name"].(string)] = true
		}
	}
	for _, want := range []string{"apply", "step fetch", "step build", "step side", "step ship"} {
		if !tracks[want] {
			t.Errorf("trace lacks track %q: %v", want, tracks)
		}
	}
	rep, err := readReport(report)
	if err != nil {
		t.Fatal(err)
	}
	code, js, errs := cli(t, context.Background(), "graph", "--report", report, "-o", "json", plan)
	if code != exitOK {
		t.Fatalf("graph --report: exit %d: %s", code, errs)
	}
	var g struct {
		Run   struct{ Status string } `json:"run"`
		Steps []struct {
			ID       string   `json:"id"`
			Status   string   `json:"status"`
			Duration *float64 `json:"durationMs"`
			Critical bool     `json:"critical"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(js), &g); err != nil {
		t.Fatal(err)
	}
	onPath := map[string]bool{}
	for _, s := range rep.CriticalPath {
		onPath[s.ID] = true
	}
	byID := map[string]engine.StepResult{}
	for _, s := range rep.Steps {
		byID[s.ID] = s
	}
	if g.Run.Status != string(rep.Status) || len(g.Steps) != len(rep.Steps) {
		t.Fatalf("graph run %q with %d steps; report %q with %d", g.Run.Status, len(g.Steps), rep.Status, len(rep.Steps))
	}
	for _, s := range g.Steps {
		r := byID[s.ID]
		ran := r.Attempts > 0
		if s.Status != string(r.Status) || s.Critical != onPath[s.ID] || (s.Duration != nil) != ran {
			t.Errorf("graph step %+v; report %+v, critical %v", s, r, onPath[s.ID])
		}
	}
	_, dot, _ := cli(t, context.Background(), "graph", "--report", report, "-o", "dot", plan)
	_, mer, _ := cli(t, context.Background(), "graph", "--report", report, "-o", "mermaid", plan)
	for _, want := range []string{`"build" [label="build\nrun\nfailed `, `fillcolor="#ffc7ce"`, `"fetch" -> "build" [penwidth=3]`, `"ship\nfile\nblocked"`} {
		if !strings.Contains(dot, want) {
			t.Errorf("dot lacks %q:\n%s", want, dot)
		}
	}
	for _, want := range []string{"classDef failed fill:#ffc7ce", "class s1 failed", "linkStyle 0 stroke-width:3px", "classDef blocked"} {
		if !strings.Contains(mer, want) {
			t.Errorf("mermaid lacks %q:\n%s", want, mer)
		}
	}
}

// A trace is written also when the plan is invalid; --trace and --report
// must be writable and distinct; graph --report refuses reports that do
// not describe the plan.
func TestTraceAndGraphReportErrors(t *testing.T) {
	dir := t.TempDir()
	plan := writePlan(t, dir, twoFiles)
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("steps: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	traceFile := filepath.Join(dir, "t.json")
	if code, _, _ := cli(t, context.Background(), "apply", "--trace", traceFile, bad); code != exitFailed {
		t.Errorf("invalid plan: exit %d", code)
	}
	if data, err := os.ReadFile(traceFile); err != nil || !strings.Contains(string(data), `"traceEvents"`) || !strings.Contains(string(data), `"load"`) {
		t.Errorf("no trace of an invalid plan's run: %v %.200s", err, data)
	}
	same, link := filepath.Join(dir, "same.json"), filepath.Join(dir, "link.json")
	if err := os.WriteFile(same, nil, 0o644); err != nil || os.Symlink(same, link) != nil {
		t.Fatal("make same.json and a link to it")
	}
	for _, args := range [][]string{
		{"apply", "--trace", filepath.Join(dir, "no", "such", "t.json"), plan},
		{"apply", "--trace", dir, plan},
		{"apply", "--trace", same, "--report", same, plan},
		{"apply", "--trace", same, "--report", link, plan},
	} {
		if code, _, _ := cli(t, context.Background(), args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	report := filepath.Join(dir, "run.json")
	if code, _, _ := cli(t, context.Background(), "apply", "--report", report, plan); code != exitOK {
		t.Fatalf("apply: exit %d", code)
	}
	other := writePlanAs(t, t.TempDir(), "other", twoFiles)
	fewer := writePlanAs(t, t.TempDir(), "cli-test", "  a:\n    type: file\n    with: {path: \"${out}/a.txt\", content: a}\n")
	notJSON := filepath.Join(dir, "x.json")
	if err := os.WriteFile(notJSON, []byte("{\"plan\": "), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, nil, 0o644); err != nil || os.Truncate(huge, maxReport+1) != nil {
		t.Fatal("make huge report")
	}
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		report, plan, want string
	}{
		{fifo, plan, "not a regular file"}, // and no wait for a writer
		{dir, plan, "not a regular file"},
		{report, other, `the report is of plan "cli-test", not "other"`},
		{report, fewer, "the report has 1 step that the plan lacks: b"},
		{notJSON, plan, "not a JSON report"},
		{huge, plan, "larger than 64 MiB"},
		{traceFile, plan, "not a report"},
		{filepath.Join(dir, "missing.json"), plan, "no such file"},
	} {
		code, _, errs := cli(t, context.Background(), "graph", "--report", tc.report, tc.plan)
		var msg struct{ Message string }
		_ = json.Unmarshal([]byte(errs), &msg)
		if code != exitUsage || !strings.Contains(msg.Message, tc.want) {
			t.Errorf("graph --report %s %s: exit %d, %q; want %d and %q", filepath.Base(tc.report), filepath.Base(tc.plan), code, errs, exitUsage, tc.want)
		}
	}
}

// writePlanAs is writePlan with another plan name.
func writePlanAs(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := writePlan(t, dir, body)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), "name: cli-test", "name: "+name, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A report edited by hand cannot smuggle text into the pictures: statuses,
// steps and the critical path must be ones a run writes.
func TestGraphReportRefusesForgedContent(t *testing.T) {
	dir := t.TempDir()
	plan := writePlan(t, dir, twoFiles)
	for _, tc := range []struct{ doc, want string }{
		{`{"plan":"cli-test","status":"ok","steps":[{"id":"a","status":"done\"]\n  x[\"pwned"}]}`, `status "done`},
		{`{"plan":"cli-test","status":"ok","steps":[{"id":"a","status":"changed"},{"id":"a","status":"changed"}]}`, "appears twice"},
		{`{"plan":"cli-test","status":"ok","steps":[{"id":"a","status":"changed","durationMs":-5}]}`, "negative"},
		{`{"plan":"cli-test","status":"fine","steps":[]}`, `run status "fine"`},
		{`{"plan":"cli-test","status":"ok","durationMs":1e300,"steps":[]}`, "out of range"},
		{`{"plan":"cli-test","status":"ok","durationMs":-1,"steps":[]}`, "negative duration"},
		{`{"plan":"cli-test","status":"ok","steps":[{"id":"a","type":"run","status":"changed"}]}`, "a run step in the report and a file step in the plan"},
		{`{"status":"ok","steps":[]}`, "names no plan"},
		{`{"plan":"cli-test","status":"ok","steps":[{"id":"a","status":"changed"}],"criticalPath":[{"id":"b"}]}`, "critical path names b"},
	} {
		f := filepath.Join(dir, "r.json")
		if err := os.WriteFile(f, []byte(tc.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := cli(t, context.Background(), "graph", "--report", f, "-o", "mermaid", plan)
		if code != exitUsage || !strings.Contains(errs, strings.ReplaceAll(tc.want, `"`, `\"`)) || out != "" {
			t.Errorf("%s: exit %d, out %q, err %q; want %d and %q", tc.doc, code, out, errs, exitUsage, tc.want)
		}
	}
}
