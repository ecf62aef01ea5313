package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	if !rep.Failed() || rep.Status != "failed" {
		t.Errorf("report status: got %q, want failed", rep.Status)
	}
}

// TestKeepGoing: independent branches finish; dependents of the failure are
// blocked, transitively.
func TestKeepGoing(t *testing.T) {
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

func TestTimeout(t *testing.T) {
	src := header + `steps:
  slow:
    type: run
    timeout: 100ms
    with: {command: [sleep, "10"]}
`
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	r := result(t, rep, "slow")
	if r.Status != engine.StatusFailed || !strings.HasPrefix(r.Error, "timed out after 100ms") {
		t.Errorf("slow: got %s %q, want failed with a timeout message", r.Status, r.Error)
	}
}

// TestRetry uses a real command that fails twice, then succeeds, and checks
// the waits between attempts grow exponentially within their jitter bounds.
func TestRetry(t *testing.T) {
	dir := t.TempDir()
	src := header + `steps:
  flaky:
    type: run
    retry: {attempts: 4, delay: 100ms, maxDelay: 150ms}
    with:
      dir: ` + dir + `
      command: [sh, -c, 'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]']
  hopeless:
    type: run
    retry: {attempts: 2, delay: 1ms}
    with: {command: ["false"]}
`
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	var mu sync.Mutex
	var all []time.Duration
	opts := engine.WithSleep(engine.ApplyOptions{Parallelism: 1, FailurePolicy: engine.KeepGoing, Logger: zerolog.Nop()},
		func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			all = append(all, d)
			mu.Unlock()
			return nil
		})
	rep, err := engine.Apply(context.Background(), g, opts)
	if err != nil {
		t.Fatal(err)
	}
	fl := result(t, rep, "flaky")
	if fl.Status != engine.StatusChanged || fl.Attempts != 3 {
		t.Errorf("flaky: got %s after %d attempts, want changed after 3", fl.Status, fl.Attempts)
	}
	h := result(t, rep, "hopeless")
	if h.Status != engine.StatusFailed || h.Attempts != 2 {
		t.Errorf("hopeless: got %s after %d attempts, want failed after 2", h.Status, h.Attempts)
	}
	// flaky ran first (parallelism 1): its two waits are 100ms then 150ms
	// (200ms capped), each drawn from the upper half.
	if len(all) != 3 {
		t.Fatalf("recorded waits %v, want 3 (two for flaky, one for hopeless)", all)
	}
	for i, bounds := range [][2]time.Duration{{50 * time.Millisecond, 100 * time.Millisecond}, {75 * time.Millisecond, 150 * time.Millisecond}} {
		if all[i] < bounds[0] || all[i] > bounds[1] {
			t.Errorf("wait %d: got %v, want within %v", i+1, all[i], bounds)
		}
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	tr := newTracker()
	src := header + "steps:\n  p: {type: probe, retry: {attempts: 5, delay: 1ms}, with: {permanent: true}}\n"
	_, g := loadString(t, newRegistry(tr), src, nil)
	rep, _ := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if r := result(t, rep, "p"); r.Status != engine.StatusFailed || r.Attempts != 1 || tr.attempts["p"] != 1 {
		t.Errorf("p: got %s after %d attempts (%d applies), want failed after 1", r.Status, r.Attempts, tr.attempts["p"])
	}
}

// TestRetryStopsOnCancel: a cancellation during the wait between attempts
// ends the step at once instead of sleeping out the backoff.
func TestRetryStopsOnCancel(t *testing.T) {
	tr := newTracker()
	src := header + "steps:\n  p: {type: probe, retry: {attempts: 5, delay: 1h, maxDelay: 1h}, with: {fail: true}}\n"
	_, g := loadString(t, newRegistry(tr), src, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			tr.mu.Lock()
			n := tr.attempts["p"]
			tr.mu.Unlock()
			if n > 0 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	rep, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if !errors.Is(err, engine.ErrInterrupted) {
		t.Fatalf("Run(): got %v, want ErrInterrupted", err)
	}
	if r := result(t, rep, "p"); r.Attempts != 1 || r.Status != engine.StatusCancelled {
		t.Errorf("p: got %s after %d attempts, want cancelled after 1", r.Status, r.Attempts)
	}
}

func TestPanicBecomesFailure(t *testing.T) {
	src := header + "failurePolicy: keep-going\nsteps:\n  bad: {type: probe, with: {panic: true}}\n  good: {type: probe}\n"
	_, g := loadString(t, newRegistry(newTracker()), src, nil)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, rep, map[string]engine.Status{"bad": "failed", "good": "changed"})
	if e := result(t, rep, "bad").Error; e != "panic: probe bad exploded" {
		t.Errorf("bad error: got %q", e)
	}
}

func TestTargetRunsOnlyWhatItNeeds(t *testing.T) {
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
	if rep.Status != "interrupted" {
		t.Errorf("report status: got %q, want interrupted", rep.Status)
	}
}

// TestCheckOnly is what `rootfsctl plan` runs: checks only, nothing applied.
func TestCheckOnly(t *testing.T) {
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

func loadStringFile(t *testing.T, reg *engine.Registry, file string) (*engine.Plan, *engine.Graph) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return loadString(t, reg, string(src), nil)
}

// countingStep counts its Check calls; it is up to date once its file exists.
type countingStep struct {
	file   string
	checks *sync.Map // file -> *int
	mu     *sync.Mutex
}

func (s *countingStep) bump() {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _ := s.checks.LoadOrStore(s.file, new(int))
	*(v.(*int))++
}

func (s *countingStep) Check(context.Context) (engine.Change, error) {
	s.bump()
	if _, err := os.Stat(s.file); err == nil {
		return engine.UpToDate("exists"), nil
	}
	return engine.NeedsChange("missing"), nil
}
func (s *countingStep) Apply(context.Context) error    { return os.WriteFile(s.file, nil, 0o644) }
func (s *countingStep) Prefetch(context.Context) error { return nil }
func (s *countingStep) Preflight() []engine.Check      { return nil }

// TestCheckRunsOncePerStepPerApply: preflight, prefetch and the run share
// one Check result per step, on a cold apply and on a warm one.
func TestCheckRunsOncePerStepPerApply(t *testing.T) {
	dir := t.TempDir()
	var counts sync.Map
	var mu sync.Mutex
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "count"}, struct{}{}, func(id string, _ *struct{}) (engine.Step, error) {
		return &countingStep{file: filepath.Join(dir, id), checks: &counts, mu: &mu}, nil
	})
	_, g := loadString(t, reg, header+"steps:\n  a: {type: count}\n  b: {type: count, needs: [a]}\n  c: {type: count, needs: [a, b]}\n", nil)
	for _, round := range []string{"cold", "warm"} {
		counts.Clear()
		rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir(),
			Preflight: &engine.PreflightOptions{}})
		if err != nil || rep.Failed() {
			t.Fatalf("%s apply: %v %+v", round, err, rep)
		}
		for _, id := range []string{"a", "b", "c"} {
			v, _ := counts.Load(filepath.Join(dir, id))
			if n, _ := v.(*int); n == nil || *n != 1 {
				t.Errorf("%s apply: step %s checked %v times, want 1", round, id, v)
			}
		}
	}
}

// TestUpToDateStepIsCheckedAgainAfterItsNeedChanged: a check result taken
// before the run no longer holds once a need changed the system.
func TestUpToDateStepIsCheckedAgainAfterItsNeedChanged(t *testing.T) {
	dir := t.TempDir()
	var counts sync.Map
	var mu sync.Mutex
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "count"}, struct{}{}, func(id string, _ *struct{}) (engine.Step, error) {
		return &countingStep{file: filepath.Join(dir, id), checks: &counts, mu: &mu}, nil
	})
	if err := os.WriteFile(filepath.Join(dir, "b"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, g := loadString(t, reg, header+"steps:\n  a: {type: count}\n  b: {type: count, needs: [a]}\n", nil)
	if _, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	v, _ := counts.Load(filepath.Join(dir, "b"))
	if n := *(v.(*int)); n != 2 {
		t.Errorf("b was checked %d times, want 2 (before the run, and again after a changed)", n)
	}
}

// blockingCheck is a preflight check that waits until it is cancelled.
type blockingCheck struct{ started chan struct{} }

func (blockingCheck) Name() string { return "blocking" }
func (c blockingCheck) Run(ctx context.Context) []engine.CheckResult {
	close(c.started)
	<-ctx.Done()
	return []engine.CheckResult{{Name: "blocking", Severity: engine.SeverityError, Message: "network or protocol error"}}
}

type preflightStep struct{ c blockingCheck }

func (preflightStep) Check(context.Context) (engine.Change, error) {
	return engine.NeedsChange("x"), nil
}
func (preflightStep) Apply(context.Context) error { return nil }
func (s preflightStep) Preflight() []engine.Check { return []engine.Check{s.c} }

// TestInterruptDuringPreflight: cancelling while checks run ends the run
// as interrupted (not as a failed check), with every step not started.
func TestInterruptDuringPreflight(t *testing.T) {
	load := func() (*engine.Plan, *engine.Graph, context.Context) {
		started := make(chan struct{})
		reg := engine.NewRegistry()
		engine.Register(reg, engine.StepType{Name: "pf"}, struct{}{}, func(string, *struct{}) (engine.Step, error) {
			return preflightStep{blockingCheck{started}}, nil
		})
		p, g := loadString(t, reg, header+"steps:\n  a: {type: pf}\n", nil)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() { <-started; cancel() }()
		return p, g, ctx
	}
	_, g, ctx := load()
	rep, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir(), Preflight: &engine.PreflightOptions{}})
	if !errors.Is(err, engine.ErrInterrupted) || rep.Status != engine.OutcomeInterrupted {
		t.Fatalf("Run(): %v, status %s; want ErrInterrupted and interrupted", err, rep.Status)
	}
	if r := result(t, rep, "a"); r.Status != engine.StatusCancelled || r.Message != "not started: interrupted" {
		t.Errorf("step a: %+v", r)
	}
	_, g, ctx = load()
	pre, err := engine.Preflight(ctx, g, engine.PreflightOptions{})
	if !errors.Is(err, engine.ErrInterrupted) || pre.Status != engine.OutcomeInterrupted {
		t.Errorf("Preflight(): %v, %+v; want ErrInterrupted", err, pre)
	}
}

// TestTableShowsAttemptsAndSummaryLine: the table row of a failed step is
// its message's first line and says how many attempts were made.
func TestTableShowsAttemptsAndSummaryLine(t *testing.T) {
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
