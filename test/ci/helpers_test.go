// Package ci tests what users wire into their own CI and editors: the GitHub
// Action (action.yml) and the pre-commit hooks (.pre-commit-hooks.yaml), run
// for real, as a runner and pre-commit run them.
package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// repo is the checkout under test.
var repo = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

// need skips a test whose tool is missing, except under CI, where
// .ci/run installs it and a skip would hide a missing check.
func need(t *testing.T, tool, why string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := tool + " is not installed (" + why + "); apt-get install " + tool
	if os.Getenv("CI") != "" {
		t.Fatalf("CI must run this test: %s", msg)
	}
	t.Skip(msg)
	return ""
}

// buildRootfsctl builds the binary once per test binary run.
func buildRootfsctl(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "rootfsctl")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=v0.0.0-test", "-o", bin, "./cmd/rootfsctl")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build rootfsctl: %v\n%s", err, out)
	}
	return bin
}

// workspace is a directory of plans: one valid, one with an unknown step
// type on line 6, column 11.
func workspace(t *testing.T, broken bool) string {
	t.Helper()
	ws := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ws, "plans"), 0o755); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(repo, "plans", "hello.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(ws, "plans", "good.yaml"), string(good))
	if broken {
		write(t, filepath.Join(ws, "plans", "broken.yaml"), brokenPlan)
	}
	return ws
}

const brokenPlan = "apiVersion: rootfsctl/v1\nkind: Plan\nname: broken\nsteps:\n  a:\n    type: nope\n"

func write(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
