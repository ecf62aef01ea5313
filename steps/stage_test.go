package steps_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
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
