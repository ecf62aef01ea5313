package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
)

func statuses(rep *engine.Report) map[string]engine.Status {
	out := map[string]engine.Status{}
	for _, s := range rep.Steps {
		out[s.ID] = s.Status
	}
	return out
}

func result(t *testing.T, rep *engine.Report, id string) engine.StepResult {
	t.Helper()
	for _, s := range rep.Steps {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("report has no step %q: %+v", id, rep.Steps)
	return engine.StepResult{}
}

func wantStatuses(t *testing.T, rep *engine.Report, want map[string]engine.Status) {
	t.Helper()
	got := statuses(rep)
	for id, w := range want {
		if got[id] != w {
			t.Errorf("step %s: got status %q, want %q (message %q, error %q)", id, got[id], w, result(t, rep, id).Message, result(t, rep, id).Error)
		}
	}
	if len(got) != len(want) {
		t.Errorf("report has steps %v, want exactly %v", got, want)
	}
}

const header = "apiVersion: rootfsctl/v1\nkind: Plan\nname: t\n"

// TestRunOrderWithRealSteps runs real run and file steps and checks every
// step started after its needs finished, then that a second run is a no-op
// for the steps that can tell.
func TestRunOrderWithRealSteps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	step := func(id string, needs string) string {
		return fmt.Sprintf("  %s:\n    type: run\n    needs: [%s]\n    with: {command: [sh, -c, 'echo start %s >> %s; sleep 0.02; echo end %s >> %s']}\n", id, needs, id, log, id, log)
	}
	src := header + "vars: {dir: " + dir + "}\nsteps:\n" +
		step("a", "") + step("b", "a") + step("c", "a") + step("d", "b, c") + step("e", "") +
		"  f:\n    type: file\n    needs: [d]\n    with: {path: '${dir}/out/f.txt', content: done, mode: '0640'}\n"
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Parallelism: 4, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"a": "changed", "b": "changed", "c": "changed", "d": "changed", "e": "changed", "f": "changed"})
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		pos[line] = i
	}
	for _, e := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}} {
		if pos["end "+e[0]] > pos["start "+e[1]] {
			t.Errorf("%s started before its need %s ended:\n%s", e[1], e[0], data)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "out/f.txt"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("file step result: %v, mode %v; want mode 0640", err, fi)
	}

	rep, err = engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if got := result(t, rep, "f").Status; got != engine.StatusUnchanged {
		t.Errorf("second run: f is %s, want unchanged", got)
	}
}

func wide(n int, params string) string {
	var b strings.Builder
	b.WriteString(header + "steps:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  s%02d:\n    type: probe\n    with: %s\n", i, params)
	}
	return b.String()
}

func TestParallelismLimit(t *testing.T) {
	t.Parallel()
	for _, j := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("j=%d", j), func(t *testing.T) {
			tr := newTracker()
			_, g := loadString(t, newRegistry(tr), wide(16, "{hold: 10ms}"), nil)
			rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Parallelism: j, Logger: zerolog.Nop()})
			if err != nil || rep.Failed() {
				t.Fatalf("Run(): %v, %s", err, rep.Summary())
			}
			if tr.peak > j {
				t.Errorf("peak concurrency %d exceeds parallelism %d", tr.peak, j)
			}
			if tr.peak < j {
				t.Errorf("peak concurrency %d: the scheduler never used all %d slots", tr.peak, j)
			}
			if len(tr.started) != 16 {
				t.Errorf("started %d steps, want 16", len(tr.started))
			}
		})
	}
}

func TestParallelismFromPlan(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	src := strings.Replace(wide(6, "{hold: 10ms}"), "steps:", "parallelism: 2\nsteps:", 1)
	_, g := loadString(t, newRegistry(tr), src, nil)
	if _, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	if tr.peak != 2 {
		t.Errorf("peak concurrency %d, want the plan's parallelism 2", tr.peak)
	}
}

// TestFailFast: the first failure cancels the running steps, starts nothing
// new, and blocks the dependents.
func TestFailFast(t *testing.T) {
	t.Parallel()
	src := header + `steps:
  slow:
    type: run
    with: {command: [sleep, "30"]}
  boom:
    type: run
    with: {command: [sh, -c, "echo one >&2; echo two >&2; exit 3"]}
  later:
    type: run
    with: {command: ["true"]}
  after:
    type: run
    needs: [boom]
    with: {command: ["true"]}
`
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Parallelism: 2, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"slow": "cancelled", "boom": "failed", "later": "cancelled", "after": "blocked"})
	if e := result(t, rep, "boom").Error; e != "sh exited with status 3: two\none\ntwo" {
		t.Errorf("boom error: got %q, want the exit code and the stderr tail", e)
	}
	if m := result(t, rep, "after").Message; m != "needs boom, which failed" {
		t.Errorf("after message: got %q", m)
	}
	if m := result(t, rep, "later").Message; !strings.Contains(m, "fail-fast") {
		t.Errorf("later message: got %q, want it to say fail-fast", m)
	}
	if !rep.Failed() || rep.Status != engine.OutcomeFailed {
		t.Errorf("report status: got %q, want failed", rep.Status)
	}
}

// TestKeepGoing: independent branches finish; dependents of the failure are
// blocked, transitively.
func TestKeepGoing(t *testing.T) {
	t.Parallel()
	src := header + `failurePolicy: keep-going
steps:
  a: {type: probe, with: {fail: true}}
  b: {type: probe, needs: [a]}
  c: {type: probe, needs: [b]}
  d: {type: probe, with: {hold: 5ms}}
  e: {type: probe, needs: [d]}
`
	tr := newTracker()
	p, g := loadString(t, newRegistry(tr), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"a": "failed", "b": "blocked", "c": "blocked", "d": "changed", "e": "changed"})
	if m := result(t, rep, "c").Message; m != "needs b, which was blocked" {
		t.Errorf("c message: got %q", m)
	}
	// The flag overrides the plan: fail-fast from the command line is not
	// offered, but keep-going on a fail-fast plan is.
	p.FailurePolicy = engine.FailFast
	rep, _ = engine.Apply(context.Background(), g, engine.ApplyOptions{FailurePolicy: engine.KeepGoing, Logger: zerolog.Nop()})
	if got := result(t, rep, "e").Status; got != engine.StatusChanged {
		t.Errorf("with RunOptions keep-going: e is %s, want changed", got)
	}
}

func TestTargetRunsOnlyWhatItNeeds(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	_, g := loadStringFile(t, newRegistry(tr), "testdata/valid/graph.yaml")
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Targets: []string{"left"}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"start": "changed", "left": "changed"})
	if len(tr.started) != 2 {
		t.Errorf("applied %v, want only start and left", tr.started)
	}
}

// TestInterrupt: cancelling the run's context (what SIGINT does) stops the
// running steps, starts nothing else, and returns the partial report.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	tr := newTracker()
	src := header + `steps:
  done: {type: probe}
  stuck: {type: probe, needs: [done], with: {block: true}}
  next: {type: probe, needs: [stuck]}
  other: {type: probe, needs: [done], with: {block: true}}
`
	_, g := loadString(t, newRegistry(tr), src, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-tr.blocked
		<-tr.blocked
		cancel()
	}()
	rep, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("Run(): got %v, want ErrInterrupted", err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"done": "changed", "stuck": "cancelled", "other": "cancelled", "next": "blocked"})
	if rep.Status != engine.OutcomeInterrupted {
		t.Errorf("report status: got %q, want interrupted", rep.Status)
	}
}

// TestCheckOnly is what `rootfsctl plan` runs: checks only, nothing applied.
func TestCheckOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := header + `steps:
  f:
    type: file
    with: {path: ` + dir + `/sub/f.txt, content: x}
  same:
    type: probe
    with: {upToDate: true}
`
	tr := newTracker()
	_, g := loadString(t, newRegistry(tr), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{CheckOnly: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"f": "would-change", "same": "unchanged"})
	if _, err := os.Stat(filepath.Join(dir, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check-only run created %s/sub (stat: %v)", dir, err)
	}
}

// TestTableShowsAttemptsAndSummaryLine: the table row of a failed step is
// its message's first line and says how many attempts were made.
func TestTableShowsAttemptsAndSummaryLine(t *testing.T) {
	t.Parallel()
	rep := &engine.Report{Status: engine.OutcomeFailed, Steps: []engine.StepResult{
		{ID: "x", Type: "run", Status: engine.StatusFailed, Attempts: 3, Error: "sh exited with status 2: last line\nfirst\nlast line"},
		{ID: "y", Type: "run", Status: engine.StatusChanged, Attempts: 1},
	}}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "sh exited with status 2: last line … (after 3 attempts)") {
		t.Errorf("table:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "2 steps: 1 changed, 1 failed") {
		t.Errorf("summary:\n%s", b.String())
	}
	one := &engine.Report{Steps: []engine.StepResult{{ID: "y", Status: engine.StatusChanged}}}
	if s := one.Summary(); !strings.HasPrefix(s, "1 step: 1 changed") {
		t.Errorf("Summary(): %q", s)
	}
}
