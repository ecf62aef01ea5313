package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// blackHole accepts connections and never answers: a registry or mirror
// that hangs.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// fillCache puts n small, old entries in a cache, so that the prune after
// an apply takes long enough to be interrupted.
func fillCache(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	for i := range n {
		p := filepath.Join(dir, "sha256", fmt.Sprintf("%064x", i+1))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// phaseRun starts an apply with debug JSON logs and sends sig once a log
// event names the phase (plus delay). It returns the exit code, stdout
// and the time from the signal to the exit.
func phaseRun(t *testing.T, cmd *exec.Cmd, phase string, delay time.Duration, sig syscall.Signal) (int, string, time.Duration, bool) {
	t.Helper()
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hit := make(chan struct{})
	var tail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["phase"] == phase {
				once.Do(func() { close(hit) })
			}
			if len(tail) < 200 {
				tail = append(tail, sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	reached := false
	select {
	case <-hit:
		reached = true
		time.Sleep(delay)
	case <-time.After(60 * time.Second):
	}
	sent := time.Now()
	_ = cmd.Process.Signal(sig)
	err = cmd.Wait()
	took := time.Since(sent)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if !reached {
		t.Errorf("phase %s was never logged; log:\n%s", phase, strings.Join(tail, "\n"))
	}
	return code, stdout.String(), took, reached
}

// TestInterruptInEveryPhase interrupts cold applies in each phase: loading
// the plan, preflight (against servers that never answer), waiting for
// another run's lock, pulling, unpacking, downloading, installing, writing
// the configuration, pruning the cache. Each must exit 130 promptly, print
// the partial table, leave no temporary file, and the next apply must
// produce exactly the tree of an uninterrupted run.
func TestInterruptInEveryPhase(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: runs about twenty applies")
	}
	bin, s, ref, _ := referenceRun(t)
	hole := blackHole(t)
	type phaseCase struct {
		phase string
		delay time.Duration
		sig   syscall.Signal
		// args, when set, replaces the stand's sources (the preflight case).
		vars []string
		// lockHolder starts another apply on the machine first.
		lockHolder bool
	}
	for _, pc := range []phaseCase{
		{phase: "load", sig: syscall.SIGINT},
		{phase: "preflight", delay: 200 * time.Millisecond, sig: syscall.SIGINT,
			vars: []string{"--var", "registry=" + hole, "--var", "mirror=http://" + hole}},
		{phase: "preflight", delay: 200 * time.Millisecond, sig: syscall.SIGTERM,
			vars: []string{"--var", "registry=" + hole, "--var", "mirror=http://" + hole}},
		{phase: "lock-wait", delay: 100 * time.Millisecond, sig: syscall.SIGINT, lockHolder: true},
		{phase: "pull", sig: syscall.SIGINT},
		{phase: "unpack", delay: 30 * time.Millisecond, sig: syscall.SIGINT},
		{phase: "unpack", delay: 80 * time.Millisecond, sig: syscall.SIGTERM},
		{phase: "download", delay: 20 * time.Millisecond, sig: syscall.SIGINT},
		{phase: "install", sig: syscall.SIGINT},
		{phase: "config", sig: syscall.SIGTERM},
		{phase: "prune", delay: 5 * time.Millisecond, sig: syscall.SIGINT},
	} {
		t.Run(pc.phase+"/"+pc.sig.String(), func(t *testing.T) {
			out, cache := t.TempDir(), t.TempDir()
			// Every run ends with a long prune, so that a signal sent in a
			// late phase still finds the run going.
			fillCache(t, cache, 3000)
			args := []string{"--log-level", "debug", "--log-format", "json", "--cache-max-size", "1"}
			var holder *exec.Cmd
			if pc.lockHolder {
				holder = exec.Command(bin, append(s.args(out, t.TempDir()), "--log-level", "debug", "--log-format", "json")...)
				holderOut, _ := holder.StderrPipe()
				if err := holder.Start(); err != nil {
					t.Fatal(err)
				}
				locked := make(chan struct{})
				go func() {
					sc := bufio.NewScanner(holderOut)
					once := sync.Once{}
					for sc.Scan() {
						if strings.Contains(sc.Text(), `"phase":"check"`) {
							once.Do(func() { close(locked) })
						}
					}
				}()
				select {
				case <-locked:
				case <-time.After(30 * time.Second):
					t.Fatal("the first apply never took the lock")
				}
				args = append(args, "--lock-wait", "5m")
				defer func() {
					_ = holder.Process.Signal(syscall.SIGINT)
					_ = holder.Wait()
				}()
			}
			cmd := exec.Command(bin, append(append(s.args(out, cache), args...), pc.vars...)...)
			code, stdout, took, reached := phaseRun(t, cmd, pc.phase, pc.delay, pc.sig)
			if !reached {
				return
			}
			if code != exitInterrupted {
				t.Fatalf("exit %d after %s in phase %s, want %d\n%s", code, pc.sig, pc.phase, exitInterrupted, stdout)
			}
			// The grace period of a run step is 5 s; nothing here runs a command.
			if took > 5*time.Second {
				t.Errorf("took %s to exit after %s", took, pc.sig)
			}
			if !strings.Contains(stdout, "STEP") || !strings.Contains(stdout, "steps:") {
				t.Errorf("no partial table on stdout:\n%s", stdout)
			}
			if holder != nil {
				_ = holder.Process.Signal(syscall.SIGINT)
				_ = holder.Wait()
			}
			for rel := range tree(t, out) {
				if isLeftover(rel) {
					t.Errorf("temporary file left after %s: %s", pc.sig, rel)
				}
			}
			if entries, _ := os.ReadDir(filepath.Join(cache, "tmp")); len(entries) > 0 {
				t.Errorf("cache temporary files left after %s: %d", pc.sig, len(entries))
			}
			if msg, err := exec.Command(bin, s.args(out, cache)...).CombinedOutput(); err != nil {
				t.Fatalf("the next apply failed: %v\n%s", err, msg)
			}
			got := tree(t, out)
			for rel, want := range ref {
				if got[rel] != want {
					t.Errorf("after the next apply %s is %q, want %q", rel, got[rel], want)
				}
			}
			for rel := range got {
				if _, ok := ref[rel]; !ok {
					t.Errorf("after the next apply %s exists, unlike after an uninterrupted run", rel)
				}
			}
		})
	}
}

// TestPreflightCommandInterrupted: `rootfsctl preflight` against servers
// that never answer, interrupted, exits 130 at once and prints the checks
// as cancelled (it once said "network or protocol error" and exited 1).
func TestPreflightCommandInterrupted(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	hole := blackHole(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(bin, "preflight", "--log-level", "debug", "--log-format", "json", "../../plans/demo.yaml",
			"--var", "registry="+hole, "--var", "mirror=http://"+hole, "--var", "out="+t.TempDir(), "--var", "arch=amd64")
		// preflight logs no phases: the checks are under way once it has
		// loaded the plan, well within half a second, and last 10 s.
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		sent := time.Now()
		_ = cmd.Process.Signal(sig)
		_ = cmd.Wait()
		code, stdout, took := cmd.ProcessState.ExitCode(), out.String(), time.Since(sent)
		if code != exitInterrupted || took > 5*time.Second {
			t.Errorf("%s: exit %d after %s, want %d within 5 s\n%s", sig, code, took, exitInterrupted, stdout)
		}
		if !strings.Contains(stdout, "cancelled") || strings.Contains(stdout, "network or protocol error") {
			t.Errorf("%s: the checks should say cancelled:\n%s", sig, stdout)
		}
	}
}
