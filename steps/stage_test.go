package steps_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/steps"
)

// stepImpl is the implementation of the plan's step id.
func stepImpl(t *testing.T, p *engine.Plan, id string) engine.Step {
	t.Helper()
	for _, st := range p.Steps {
		if st.ID == id {
			return st.Impl
		}
	}
	t.Fatalf("no step %s", id)
	return nil
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestPrefetchStagesWhatTheInstallRenames: the prefetch of a download
// step puts verified copies of its files in a private directory beside
// the machine (a planted symlink there is replaced, never followed); the
// install renames those very files into the machine, and the run's end
// removes the stage.
func TestPrefetchStagesWhatTheInstallRenames(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	stageDir := filepath.Join(filepath.Dir(s.machine()), ".demo1.rootfsctl-tmp-stage-cri")
	outside := t.TempDir()
	if err := os.Symlink(outside, stageDir); err != nil {
		t.Fatal(err)
	}
	p, _ := s.plan(map[string]string{"containerdVersion": "2.1.0"})
	st := stepImpl(t, p, "cri")
	mustCheck(t, st, true, "")
	if err := st.(engine.Prefetcher).Prefetch(ctx()); err != nil {
		t.Fatalf("Prefetch(): %v", err)
	}
	fi, err := os.Lstat(stageDir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("stage: %v %v, want a 0700 directory", fi, err)
	}
	if names, _ := os.ReadDir(outside); len(names) != 0 {
		t.Errorf("the planted symlink's target got %d entries", len(names))
	}
	staged, err := os.ReadDir(stageDir)
	if err != nil || len(staged) == 0 {
		t.Fatalf("nothing staged: %v", err)
	}
	runc := filepath.Join(s.machine(), "usr/local/bin/runc")
	runcBefore := inode(t, runc)
	inodes := map[uint64]string{}
	for _, e := range staged {
		inodes[inode(t, filepath.Join(stageDir, e.Name()))] = e.Name()
	}
	if err := st.Apply(ctx()); err != nil {
		t.Fatalf("Apply(): %v", err)
	}
	for _, bin := range []string{"containerd", "ctr"} {
		if _, ok := inodes[inode(t, filepath.Join(s.machine(), "usr/local/bin", bin))]; !ok {
			t.Errorf("%s was not the staged file renamed into place", bin)
		}
	}
	// runc did not change: neither staged nor replaced.
	if len(staged) != 4 {
		t.Errorf("staged %d files, want containerd's 4 members only", len(staged))
	}
	if inode(t, runc) != runcBefore {
		t.Error("runc, unchanged, was replaced")
	}
	st.(engine.Releaser).Release(ctx())
	if _, err := os.Lstat(stageDir); !os.IsNotExist(err) {
		t.Errorf("stage still there after Release: %v", err)
	}
	mustCheck(t, st, false, "")
}

// TestStageLeftoverIsTidied: a stage a killed run left beside an
// up-to-date machine is removed by the next apply.
func TestStageLeftoverIsTidied(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	stageDir := filepath.Join(filepath.Dir(s.machine()), ".demo1.rootfsctl-tmp-stage-kube")
	if err := os.MkdirAll(filepath.Join(stageDir, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	wantAll(t, s.run(nil, false), engine.StatusUnchanged)
	if _, err := os.Lstat(stageDir); !os.IsNotExist(err) {
		t.Errorf("stage leftover still there: %v", err)
	}
}

// TestMembersInstallWholeOrNotAtAll: a machine on another file system
// than its stage (a symlink to a tmpfs) cannot take staged files by
// rename, so its members are copied from the cache; when the last
// member's cache entry turns out damaged, the install fails before any
// member is committed, and the machine keeps the old set whole. (The
// copies were once made at commit time, after earlier members were
// renamed in.)
func TestMembersInstallWholeOrNotAtAll(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs for the machine (CI runs make test as root)")
	}
	s := provisioned(t)
	elsewhere := t.TempDir()
	if err := syscall.Mount("tmpfs", elsewhere, "tmpfs", 0, "size=256m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(elsewhere, syscall.MNT_DETACH) })
	moved := filepath.Join(elsewhere, "demo1")
	if out, err := exec.Command("cp", "-a", s.machine(), moved).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.RemoveAll(s.machine()); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(moved, s.machine()); err != nil {
		t.Fatal(err)
	}
	before := manifest(t, filepath.Join(moved, "usr/local/bin"))
	dir := t.TempDir()
	p, _ := s.planWith(steps.Options{Fetch: fetch.New("t", fetch.WithRetries(1, time.Millisecond)), Cache: cache.New(dir)},
		map[string]string{"containerdVersion": "2.1.0"})
	st := stepImpl(t, p, "cri")
	if err := st.(engine.Prefetcher).Prefetch(ctx()); err != nil {
		t.Fatalf("Prefetch(): %v", err)
	}
	defer st.(engine.Releaser).Release(ctx())
	last := lastMember(t, dir, "containerd")
	entry := filepath.Join(dir, "sha256", last)
	b, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1 // same size, one bit off
	if err := os.WriteFile(entry, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx()); err == nil {
		t.Fatal("Apply() installed from a damaged cache entry")
	}
	if d := diffManifests(before, manifest(t, filepath.Join(moved, "usr/local/bin"))); len(d) > 0 {
		t.Errorf("a failed install changed the machine's files:\n%s", strings.Join(d, "\n"))
	}
}

// lastMember is the digest of the last member, in the archive's order, of
// the cached member list whose destinations mention name.
func lastMember(t *testing.T, cacheDir, name string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(cacheDir, "sums", "index-*"))
	for _, f := range files {
		_, doc, _ := strings.Cut(readFile(t, f), "\n")
		var ms []struct{ Dest, SHA256 string }
		if json.Unmarshal([]byte(doc), &ms) == nil && len(ms) > 1 && strings.Contains(doc, name) {
			return ms[len(ms)-1].SHA256
		}
	}
	t.Fatalf("no member list of %s in the cache", name)
	return ""
}

// TestStagedInstallRefusesADirectoryInTheWay: a directory where a staged
// file goes fails the step with a plain message, and the directory and
// what it holds stay as they were.
func TestStagedInstallRefusesADirectoryInTheWay(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	in := filepath.Join(s.machine(), "usr/local/bin/containerd")
	if err := os.Remove(in); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(in, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, _ := s.plan(map[string]string{"containerdVersion": "2.1.0"})
	st := stepImpl(t, p, "cri")
	if err := st.(engine.Prefetcher).Prefetch(ctx()); err != nil {
		t.Fatalf("Prefetch(): %v", err)
	}
	defer st.(engine.Releaser).Release(ctx())
	err := st.Apply(ctx())
	if err == nil || !strings.Contains(err.Error(), "usr/local/bin/containerd: a directory is in the way") {
		t.Fatalf("Apply(): %v, want the directory named as in the way", err)
	}
	if fi, err := os.Stat(filepath.Join(in, "keep")); err != nil || !fi.IsDir() {
		t.Errorf("the directory in the way was touched: %v", err)
	}
}
