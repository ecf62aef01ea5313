package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
)

// cacheDir keeps the tests' downloads out of the user's cache.
var cacheDir = filepath.Join(os.TempDir(), fmt.Sprintf("rootfsctl-test-cache-%d", os.Getpid()))

func TestMain(m *testing.M) {
	code := m.Run()
	os.RemoveAll(cacheDir) // best effort: a temp dir
	os.Exit(code)
}

// cli runs the command line in-process and returns the exit code and output.
func cli(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"--log-format", "json", "--cache-dir", cacheDir}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func writePlan(t *testing.T, dir, body string) string {
	if t != nil {
		t.Helper()
	}
	p := filepath.Join(dir, "plan.yaml")
	src := "apiVersion: rootfsctl/v1\nkind: Plan\nname: cli-test\nvars:\n  out: " + dir + "/out\nsteps:\n" + body
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		panic(err) // a temporary directory of the test's own
	}
	return p
}

const twoFiles = `  a:
    type: file
    with: {path: "${out}/a.txt", content: a}
  b:
    type: file
    needs: [a]
    with: {path: "${out}/b.txt", content: b}
`

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writePlan(t, dir, twoFiles)
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: rootfsctl/v1\nkind: Plan\nname: bad\nsteps:\n  a:\n    type: fiel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, context.Background(), "validate", good)
	if code != exitOK || out != good+": valid: plan cli-test, 2 steps in 2 stages\n" {
		t.Errorf("validate good: exit %d, output %q", code, out)
	}
	code, out, errOut := cli(t, context.Background(), "validate", good, bad)
	if code != exitFailed {
		t.Errorf("validate good bad: exit %d, want %d", code, exitFailed)
	}
	if want := bad + `:6:11: a: unknown step type "fiel" (did you mean "file"?)`; !strings.Contains(out, want) {
		t.Errorf("validate output %q lacks %q", out, want)
	}
	if !strings.Contains(errOut, "1 problem in 1 of 2 plans") {
		t.Errorf("validate stderr: %q", errOut)
	}
	_, out, _ = cli(t, context.Background(), "validate", "--format", "github", bad)
	if want := "::error file=" + bad + ",line=6,col=11::a: unknown step type"; !strings.HasPrefix(out, want) {
		t.Errorf("github format: got %q, want prefix %q", out, want)
	}
	_, out, _ = cli(t, context.Background(), "validate", "--format", "json", bad)
	var ds []engine.Diagnostic
	if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 1 || ds[0].Line != 6 || ds[0].Col != 11 {
		t.Errorf("json format: %v, %+v", err, ds)
	}
	code, _, _ = cli(t, context.Background(), "validate", "--format", "xml", good)
	if code != exitUsage {
		t.Errorf("bad --format: exit %d, want %d", code, exitUsage)
	}
}

func TestApplyPlanAndReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := writePlan(t, dir, twoFiles)
	ctx := context.Background()

	code, out, _ := cli(t, ctx, "plan", "--detailed-exitcode", plan)
	if code != exitChanges || !strings.Contains(out, "would-change") {
		t.Errorf("plan before apply: exit %d, output:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Fatalf("plan created files: %v", err)
	}

	report := filepath.Join(dir, "report.json")
	code, out, _ = cli(t, ctx, "apply", "--report", report, plan)
	if code != exitOK || !strings.Contains(out, "2 steps: 2 changed") {
		t.Errorf("apply: exit %d, output:\n%s", code, out)
	}
	var rep engine.Report
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Steps) != 2 || rep.Steps[0].Status != engine.StatusChanged {
		t.Errorf("report: %v %+v", err, rep)
	}

	code, out, _ = cli(t, ctx, "apply", "-o", "json", plan)
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || rep.Count(engine.StatusUnchanged) != 2 {
		t.Errorf("second apply: exit %d, err %v, report %+v", code, err, rep)
	}
	code, _, _ = cli(t, ctx, "plan", "--detailed-exitcode", plan)
	if code != exitOK {
		t.Errorf("plan after apply: exit %d, want 0", code)
	}
	code, out, _ = cli(t, ctx, "apply", "--target", "a", plan)
	if code != exitOK || strings.Contains(out, "\nb ") {
		t.Errorf("apply --target a: exit %d, output:\n%s", code, out)
	}
}

func TestApplyFailureExitCode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := writePlan(t, dir, "  boom:\n    type: run\n    with: {command: [\"false\"]}\n")
	code, out, errOut := cli(t, context.Background(), "apply", plan)
	if code != exitFailed || !strings.Contains(out, "failed") || !strings.Contains(errOut, "1 failed") {
		t.Errorf("apply failing plan: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestInvalidPlanChangesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := writePlan(t, dir, twoFiles+"  c:\n    type: file\n    needs: [zzz]\n    with: {path: /tmp/x}\n")
	code, _, errOut := cli(t, context.Background(), "apply", plan)
	if code != exitFailed || !strings.Contains(errOut, `needs unknown step \"zzz\"`) || !strings.Contains(errOut, "nothing was done") {
		t.Errorf("apply invalid: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("an invalid plan was partly applied: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"apply"}, {"apply", "--nope", "x.yaml"}, {"frobnicate"}, {"graph", "--format", "png", "x.yaml"},
		{"apply", "--var", "novalue", "x.yaml"}, {"steps", "no-such-type"},
	} {
		if code, _, _ := cli(t, context.Background(), args...); code != exitUsage {
			t.Errorf("rootfsctl %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestInfoCommands(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"steps"}, "file"},
		{[]string{"steps", "run"}, "creates"},
		{[]string{"steps", "file", "-o", "json"}, `"default": "0644"`},
		{[]string{"schema"}, `"$schema": "http://json-schema.org/draft-07/schema#"`},
		{[]string{"version"}, "rootfsctl "},
		{[]string{"completion", "bash"}, "bash completion"},
		{[]string{"apply", "--help"}, "Examples:"},
	} {
		code, out, _ := cli(t, context.Background(), tc.args...)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("rootfsctl %v: exit %d, output lacks %q:\n%.400s", tc.args, code, tc.want, out)
		}
	}
}

// TestSIGINT builds the real binary, interrupts a running apply and checks
// exit code 130, the partial result, and that the next apply completes.
func TestSIGINT(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rootfsctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pidFile := filepath.Join(dir, "sleep.pid")
	plan := writePlan(t, dir, `  slow:
    type: run
    with:
      command: [sh, -c, 'if [ -e `+dir+`/second ]; then exit 0; fi; sleep 30 & echo $! > `+pidFile+`; wait']
  after:
    type: file
    needs: [slow]
    with: {path: "${out}/after.txt", content: done}
`)
	cmd := exec.Command(bin, "apply", "--log-format", "json", plan)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if b, _ := os.ReadFile(pidFile); len(strings.TrimSpace(string(b))) > 0 {
			break
		}
		if i > 1000 {
			t.Fatal("the slow step never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitInterrupted {
		t.Fatalf("apply after SIGINT: %v, want exit %d", err, exitInterrupted)
	}
	for _, want := range []string{"slow   run   cancelled", "after  file  blocked", "needs slow, which was cancelled"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("partial result lacks %q:\n%s", want, out.String())
		}
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if !strings.Contains(string(st), ") Z ") {
			t.Errorf("the step's child (pid %d) survived the interrupt", pid)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "second"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "apply", plan).CombinedOutput(); err != nil {
		t.Fatalf("apply after the interrupt: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out/after.txt")); err != nil || string(b) != "done" {
		t.Errorf("the repairing apply did not finish the plan: %q %v", b, err)
	}
}

// TestApplyRunsPreflightFirst: with the registry and mirror unreachable,
// apply stops at preflight and creates nothing; preflight reports why
// without naming addresses.
func TestApplyRunsPreflightFirst(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	vars := []string{"--var", "registry=127.0.0.1:1", "--var", "mirror=http://127.0.0.1:1", "--var", "out=" + out}
	code, _, errOut := cli(t, context.Background(), append([]string{"apply", "../../plans/demo.yaml"}, vars...)...)
	if code != exitFailed || !strings.Contains(errOut, "preflight failed") || !strings.Contains(errOut, "nothing was changed") {
		t.Errorf("apply with unreachable sources: exit %d\n%s", code, errOut)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("apply changed %s despite the failed preflight: %v", out, entries)
	}
	code, stdout, _ := cli(t, context.Background(), append([]string{"preflight", "-o", "json", "../../plans/demo.yaml"}, vars...)...)
	var rep engine.PreflightReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != exitFailed {
		t.Fatalf("preflight -o json: exit %d, %v\n%s", code, err, stdout)
	}
	if rep.Summary.Errors != 8 {
		t.Errorf("preflight errors: %d, want 8 (image, 4 kube (crictl too), 2 cri, 1 cni):\n%s", rep.Summary.Errors, stdout)
	}
	for _, leak := range []string{"http://", "/kube/", "rootfsctl/demo-node"} {
		if strings.Contains(stdout, leak) {
			t.Errorf("preflight output names a URL, path or repository (%q):\n%s", leak, stdout)
		}
	}
	for _, c := range rep.Checks {
		if c.Severity == engine.SeverityError && !strings.Contains(c.Message, "127.0.0.1:1") {
			t.Errorf("message does not name the host it could not reach: %+v", c)
		}
	}
	code, _, _ = cli(t, context.Background(), append([]string{"preflight", "--ignore-preflight-errors", "all", "../../plans/demo.yaml"}, vars...)...)
	if code != exitOK {
		t.Errorf("preflight --ignore-preflight-errors all: exit %d, want 0", code)
	}
}

func TestCacheCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"old", "new"} {
		p := filepath.Join(dir, "sha256", strings.Repeat(name[:1], 64))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 2048), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "sha256", strings.Repeat("o", 64)), old, old)
	rc := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"--cache-dir", dir}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := rc("cache", "info"); code != exitOK || !strings.Contains(out, "2 entries, 4.0 KiB") {
		t.Errorf("cache info: exit %d, %q", code, out)
	}
	if code, out := rc("cache", "prune", "--max-size", "2KiB"); code != exitOK || !strings.Contains(out, "removed 1 entry, 2.0 KiB") {
		t.Errorf("cache prune --max-size 2KiB: exit %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "sha256", strings.Repeat("n", 64))); err != nil {
		t.Errorf("prune removed the recently used entry: %v", err)
	}
	if code, out := rc("cache", "prune", "--all"); code != exitOK || !strings.Contains(out, "removed 1 entry") {
		t.Errorf("cache prune --all: exit %d, %q", code, out)
	}
	if code, _ := rc("cache", "prune", "--max-size", "lots"); code != exitUsage {
		t.Errorf("cache prune --max-size lots: exit %d, want %d", code, exitUsage)
	}
	missing := filepath.Join(dir, "nowhere")
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--cache-dir", missing, "cache", "info"}, &out, &out); code != exitOK || !strings.Contains(out.String(), "no cache yet") {
		t.Errorf("cache info of a missing cache: exit %d, %q, want it to say there is none", code, out.String())
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("cache info created the cache directory")
	}
}
