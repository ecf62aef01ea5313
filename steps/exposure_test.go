package steps_test

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// TestMachineIsNotExposedToHostUsers: missing parents of the machine
// directory are created 0700, and the machine's root is 0755 (owned by
// root when privileged) whatever the image's "./" entry says, so host
// users cannot reach the image's setuid programs and device nodes.
func TestMachineIsNotExposedToHostUsers(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	open := append([]fixture.Entry{{Name: "./", Type: tar.TypeDir, Mode: 0o777, UID: 1000, GID: 1000}}, fixture.RootFS("amd64")[1:]...)
	s.push("rootfsctl/open:v1", fixture.Index(map[string]v1.Image{"amd64": fixture.Image("amd64", fixture.Layer(open))}))
	base := t.TempDir()
	out := filepath.Join(base, "new", "out")
	rep := s.run(map[string]string{"image": s.registry + "/rootfsctl/open:v1", "out": out}, false)
	wantAll(t, rep, engine.StatusChanged)
	for _, d := range []string{filepath.Join(base, "new"), out, filepath.Join(out, "machines")} {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("created parent %s: %v %v, want mode 0700", d, fi.Mode(), err)
		}
	}
	machine := filepath.Join(out, "machines", "demo1")
	fi, err := os.Stat(machine)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("machine root mode %v, want 0755 whatever the image says", fi.Mode())
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
		t.Errorf("machine root owned by %d, want %d (root when privileged), not the image's 1000", uid, os.Geteuid())
	}
}

// exposure returns the provisioning check's result about other users.
func exposure(t *testing.T, s *stand, out string) engine.CheckResult {
	t.Helper()
	p, _ := s.planWith(standOptions(t), map[string]string{"out": out})
	for _, r := range runChecks(context.Background(), t, p, "workspace") {
		if r.Name == "nspawn-machine-provisioning" && r.Target == "machine directory access" {
			return r
		}
	}
	t.Fatal("no result for the machine directory's access")
	return engine.CheckResult{}
}

// TestPreflightWarnsWhenHostUsersCanReachTheMachine: a warning when every
// directory from / down to the machine directory's parent lets other
// users through, none when one of them stops them (or will be created,
// 0700).
func TestPreflightWarnsWhenHostUsersCanReachTheMachine(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	base := t.TempDir()
	// The test's own temporary directories (0700) are opened up; above
	// them, the system's temporary directory must let others pass.
	tmp := filepath.Clean(os.TempDir())
	for d := base; d != tmp && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for d := tmp; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s already stops other users; the test needs a temporary directory they can pass", d)
		}
		if d == "/" {
			break
		}
	}
	machines := filepath.Join(base, "machines")
	if err := os.Mkdir(machines, 0o755); err != nil {
		t.Fatal(err)
	}
	r := exposure(t, s, base)
	if r.Severity != engine.SeverityWarning || !strings.Contains(r.Message, machines) || !strings.Contains(r.Message, "other users") {
		t.Errorf("open path: %+v, want a warning naming %s", r, machines)
	}
	if err := os.Chmod(machines, 0o700); err != nil {
		t.Fatal(err)
	}
	if r := exposure(t, s, base); r.Severity != engine.SeverityOK {
		t.Errorf("%s 0700: %+v, want ok", machines, r)
	}
	if r := exposure(t, s, filepath.Join(base, "missing")); r.Severity != engine.SeverityOK {
		t.Errorf("missing parents (created 0700): %+v, want ok", r)
	}
}
