// Package ci tests what users wire into their own CI and editors: the GitHub
// Action (action.yml) and the pre-commit hooks (.pre-commit-hooks.yaml), run
// for real, as a runner and pre-commit run them.
package ci

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
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

// built is the rootfsctl the tests share, built once per test binary run
// in a directory TestMain removes.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir) // best effort: a temporary directory
	}
	os.Exit(code)
}

// buildRootfsctl returns the shared rootfsctl, alone in its directory.
func buildRootfsctl(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "rootfsctl-ci-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "rootfsctl")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version=v0.0.0-test", "-o", built.bin, "./cmd/rootfsctl")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("build rootfsctl: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
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
