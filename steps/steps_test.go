package steps_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps"
)

func TestFileStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "a/b/c.conf")
	s := build(t, "    type: file\n    with: {path: "+path+", content: \"x=1\\n\", mode: \"0640\"}\n")
	mustCheck(t, s, true, "does not exist")
	if err := s.Apply(ctx()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "x=1\n" {
		t.Fatalf("content: got %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode: got %v, want 0640", fi.Mode())
	}
	mustCheck(t, s, false, "match")
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after apply, want only the file (no temp files)", len(entries))
	}

	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s, true, "mode is -rw-------, want -rw-r-----")
	if err := os.WriteFile(path, []byte("x=2\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s, true, "content differs")

	// A symlink at the path is replaced by a regular file, not followed.
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s, true, "symlink")
	if err := s.Apply(ctx()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("symlink target was written through: %q", b)
	}
	if fi, _ := os.Lstat(path); !fi.Mode().IsRegular() {
		t.Errorf("path is %v after apply, want a regular file", fi.Mode())
	}
}

func TestFileStepSetuidMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tool")
	s := build(t, "    type: file\n    with: {path: "+path+", content: x, mode: \"04755\"}\n")
	if err := s.Apply(ctx()); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode: got %v, want setuid 0755", fi.Mode())
	}
	mustCheck(t, s, false, "match")
}

// TestFileStepRefusesWhatIsNotAFile: a directory, a device node, a fifo or
// a socket at the path is refused by Check and by Apply, and left as it is;
// a symlink is replaced as a link, never followed.
func TestFileStepRefusesWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{"directory": dir, "named pipe": fifo}
	if os.Geteuid() == 0 {
		dev := filepath.Join(dir, "null")
		if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		targets["device"] = dev
	}
	for kind, path := range targets {
		s := build(t, "    type: file\n    with: {path: "+path+", content: x}\n")
		if _, err := s.Check(ctx()); err == nil || !engine.IsPermanent(err) || !strings.Contains(err.Error(), "is a "+kind) {
			t.Errorf("Check() over a %s: got %v, want a permanent error naming it", kind, err)
		}
		if err := s.Apply(ctx()); err == nil || !engine.IsPermanent(err) {
			t.Errorf("Apply() over a %s: got %v, want a permanent error", kind, err)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode().IsRegular() {
			t.Errorf("the %s was replaced: %v %v", kind, fi.Mode(), err)
		}
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	s := build(t, "    type: file\n    with: {path: "+link+", content: new}\n")
	mustCheck(t, s, true, "is a symlink")
	if err := s.Apply(ctx()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if fi, _ := os.Lstat(link); !fi.Mode().IsRegular() {
		t.Errorf("the link was not replaced by a file: %v", fi.Mode())
	}
}

func TestRunStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t.Run("env dir and creates", func(t *testing.T) {
		s := build(t, "    type: run\n    with: {command: [sh, -c, 'echo \"$GREETING\" > out'], dir: "+dir+", env: {GREETING: hi}, creates: out}\n")
		mustCheck(t, s, true, "does not exist")
		if err := s.Apply(ctx()); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "out")); string(b) != "hi\n" {
			t.Errorf("out: got %q, want hi", b)
		}
		mustCheck(t, s, false, "exists")
	})
	t.Run("failure summary first, then the stderr tail", func(t *testing.T) {
		s := build(t, "    type: run\n    with: {command: [sh, -c, 'for i in $(seq 1 15); do echo line$i >&2; done; echo >&2; exit 7']}\n")
		err := s.Apply(ctx())
		if err == nil {
			t.Fatal("Apply(): got nil error")
		}
		// The table shows the first line: it must hold the last useful one.
		want := "sh exited with status 7: line15\nline6\nline7\nline8\nline9\nline10\nline11\nline12\nline13\nline14\nline15"
		if err.Error() != want {
			t.Errorf("Apply():\n got %q\nwant %q", err, want)
		}
	})
	t.Run("a huge line is cut, later lines still count", func(t *testing.T) {
		s := build(t, "    type: run\n    with: {command: [sh, -c, 'head -c 5000000 /dev/zero | tr \"\\\\0\" x >&2; echo >&2; echo after >&2; exit 3']}\n")
		err := s.Apply(ctx())
		if err == nil {
			t.Fatal("Apply(): got nil error")
		}
		first, _, _ := strings.Cut(err.Error(), "\n")
		if first != "sh exited with status 3: after" {
			t.Errorf("Apply(): first line %q, want the last stderr line", first)
		}
		if len(err.Error()) > 8<<10 {
			t.Errorf("Apply(): error of %d bytes; what run keeps of a child's output must be bounded", len(err.Error()))
		}
	})
	t.Run("missing program is permanent", func(t *testing.T) {
		s := build(t, "    type: run\n    with: {command: [/nonexistent/program]}\n")
		if err := s.Apply(ctx()); err == nil || !engine.IsPermanent(err) {
			t.Errorf("Apply(): got %v, want a permanent error", err)
		}
	})
	t.Run("cancellation reaches the process group", func(t *testing.T) {
		pidFile := filepath.Join(dir, "child.pid")
		s := build(t, "    type: run\n    with: {command: [sh, -c, 'sleep 30 & echo $! > "+pidFile+"; wait']}\n")
		c, cancel := context.WithCancel(ctx())
		done := make(chan error, 1)
		go func() { done <- s.Apply(c) }()
		var pid int
		for pid == 0 {
			b, _ := os.ReadFile(pidFile)
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err == nil || !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("Apply() after cancel: got %v, want context canceled", err)
		}
		// The grandchild got SIGTERM with its group: it is gone or a zombie.
		for i := 0; i < 200; i++ {
			if err := syscall.Kill(pid, 0); err != nil {
				return
			}
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(b), ") Z ") {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("child sleep (pid %d) still running after cancellation", pid)
	})
}

// alive reports whether pid is a process that is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// TestRunEndsWithinTheGracePeriod: a cancelled or timed-out command ends,
// with everything in its process group, within the grace period, however
// it holds on: ignoring SIGTERM, leaving a child that ignores it and keeps
// stdout and stderr open, or a child that left the group with setsid. A
// command that exits leaving a background child holding its output
// succeeds once the grace period has passed.
func TestRunEndsWithinTheGracePeriod(t *testing.T) {
	t.Parallel()
	const grace = 200 * time.Millisecond
	for _, tc := range []struct {
		name, script string
		cancel       bool
		escapes      bool // the child is outside the group: only the pipes are let go
	}{
		{"SIGTERM ignored", `trap "" TERM; sleep 30 & echo $! > "$1"; wait`, true, false},
		{"child ignores SIGTERM and holds the pipes", `(trap "" TERM; exec sleep 30) & echo $! > "$1"; wait`, true, false},
		{"setsid child holds the pipes", `setsid sleep 30 & echo $! > "$1"; wait`, true, true},
		{"exits, leaving a child holding the pipes", `sleep 30 & echo $! > "$1"; exit 0`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			s := buildWith(t, steps.Options{KillGrace: grace}, fmt.Sprintf("    type: run\n    with: {command: [sh, -c, '%s', sh, '%s']}\n", strings.ReplaceAll(tc.script, "'", "''"), pidFile))
			c, cancel := context.WithCancel(ctx())
			defer cancel()
			var pid int
			t.Cleanup(func() {
				if pid > 0 && alive(pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL) // the child this test started
				}
			})
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- s.Apply(c) }()
			for pid == 0 {
				select {
				case err := <-done:
					t.Fatalf("Apply() ended before its child started: %v", err)
				case <-time.After(5 * time.Millisecond):
				}
				b, _ := os.ReadFile(pidFile)
				pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			if tc.cancel {
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(grace + 10*time.Second):
				t.Fatalf("Apply() still running %s after it should have ended (grace %s)", time.Since(start), grace)
			}
			if tc.cancel && (err == nil || !strings.Contains(err.Error(), "context canceled")) {
				t.Errorf("Apply() after cancel: got %v, want context canceled", err)
			}
			if !tc.cancel && err != nil {
				t.Errorf("Apply(): got %v, want success", err)
			}
			if tc.cancel && !tc.escapes && alive(pid) {
				t.Errorf("child %d of the cancelled command's group is still running", pid)
			}
		})
	}
}

// TestMissingDirectoriesAreNamed: a run step's missing working directory
// and a download step's missing machine are said as such, once, and are
// not retried.
func TestMissingDirectoriesAreNamed(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope")
	s := build(t, "    type: run\n    with: {command: [\"true\"], dir: "+missing+"}\n")
	err := s.Apply(ctx())
	if err == nil || !engine.IsPermanent(err) || err.Error() != "working directory "+missing+" does not exist or is not a directory" {
		t.Errorf("run in a missing dir: %v", err)
	}
	d := build(t, "    type: download-cni\n    with: {machineDir: "+missing+", version: 1.5.1}\n")
	err = d.Apply(ctx())
	if err == nil || !engine.IsPermanent(err) || strings.Count(err.Error(), "machine directory") != 1 || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("download into a missing machine: %v", err)
	}
}

// TestFileStepTidiesLeftovers: a temporary file a killed write left beside
// the target is removed by the next apply, even when the file is current.
func TestFileStepTidiesLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target.txt")
	s := build(t, "    type: file\n    with: {path: "+target+", content: x}\n")
	if err := s.Apply(ctx()); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, steps.TempPrefix+"file-target.txt-0123456789ab")
	if err := os.WriteFile(leftover, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s, false, "match")
	if err := s.(engine.Tidier).Tidy(ctx()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the leftover temporary file is still there: %v", err)
	}
}

// TestRunCreatesIsSaidCleaned: a creates path built from ${plan.dir}/..
// is shown cleaned in the step's reason, and checked as written.
func TestRunCreatesIsSaidCleaned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := build(t, fmt.Sprintf("    type: run\n    with:\n      command: [\"true\"]\n      creates: %s/plans/../demo/hello\n", dir))
	mustCheck(t, s, true, dir+"/demo/hello does not exist")
	if err := os.MkdirAll(filepath.Join(dir, "plans"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "demo/hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s, false, dir+"/demo/hello exists")
}
