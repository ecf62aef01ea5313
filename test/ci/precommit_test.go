package ci

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// git runs git in dir with a fixed identity.
func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// tryRepo runs `pre-commit try-repo` of this checkout's hook on a temporary
// repository holding the given plans, as a user trying the hook would.
// pre-commit's golang language builds rootfsctl with `go install ./...` in
// its own GOPATH; the module cache stays the machine's and the proxy is off,
// so the build runs offline.
func tryRepo(t *testing.T, hook string, broken bool, extraPath string) (int, string) {
	t.Helper()
	ws := workspace(t, broken)
	write(t, filepath.Join(ws, "notes.yaml"), "not: [a plan\n") // outside plans/: not checked
	git(t, ws, "init", "-q")
	git(t, ws, "add", ".")
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("pre-commit", "try-repo", repo, hook, "--all-files", "--color", "never")
	cmd.Dir = ws
	cmd.Env = append(os.Environ(), "PRE_COMMIT_HOME="+filepath.Join(t.TempDir(), "pre-commit"),
		"GOMODCACHE="+strings.TrimSpace(string(modcache)), "GOPROXY=off", "GOFLAGS=-mod=mod -buildvcs=false",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
	if extraPath != "" {
		cmd.Env = append(cmd.Env, "PATH="+extraPath+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// The golang hook builds rootfsctl, fails on a broken plan with its
// position, and passes a repository whose plans are valid.
func TestPreCommitHook(t *testing.T) {
	need(t, "pre-commit", "the hook is tested with pre-commit try-repo")
	need(t, "go", "the hook's golang language builds with Go")
	code, out := tryRepo(t, "rootfsctl-validate", true, "")
	if code != 1 || !strings.Contains(out, `plans/broken.yaml:6:11: a: unknown step type "nope"`) || !strings.Contains(out, "Failed") {
		t.Errorf("broken plan: exit %d, want 1 and the problem's position:\n%s", code, out)
	}
	if !strings.Contains(out, "plans/good.yaml: valid") || strings.Contains(out, "notes.yaml") {
		t.Errorf("the hook should check plans/*.yaml and nothing else:\n%s", out)
	}
	if strings.Contains(out, `"level"`) {
		t.Errorf("JSON log lines in a hook's output meant for people:\n%s", out)
	}
	code, out = tryRepo(t, "rootfsctl-validate", false, "")
	if code != 0 || !strings.Contains(out, "Passed") {
		t.Errorf("valid plans: exit %d, want 0:\n%s", code, out)
	}
}

// The system hook runs the rootfsctl on PATH.
func TestPreCommitSystemHook(t *testing.T) {
	need(t, "pre-commit", "the hook is tested with pre-commit try-repo")
	code, out := tryRepo(t, "rootfsctl-validate-system", true, filepath.Dir(buildRootfsctl(t)))
	if code != 1 || !strings.Contains(out, `plans/broken.yaml:6:11:`) {
		t.Errorf("broken plan: exit %d, want 1:\n%s", code, out)
	}
}
