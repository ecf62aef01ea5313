package steps_test

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

func containerdWith(extra ...fixture.Entry) []fixture.Entry {
	return append([]fixture.Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/containerd", Mode: 0o755, Body: "#!/bin/sh\necho containerd 2.0.9\n"},
		{Name: "bin/ctr", Mode: 0o755, Body: "#!/bin/sh\necho ctr\n"},
	}, extra...)
}

// TestOnePathOneOwner: two artifacts or two steps installing one path into
// a machine fail with a message naming both, on every apply (they would
// otherwise overwrite each other and never converge); so does an archive
// listing one member twice. After the conflicting artifact is gone from
// the plan, the machine converges.
func TestOnePathOneOwner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(s *stand) (vars map[string]string, undo func())
		step  string   // the step that must fail (or "kube|cri": one of them)
		want  []string // in its error
	}{
		{"two artifacts of one step", func(s *stand) (map[string]string, func()) {
			s.publish("containerd/v2.0.9/containerd-2.0.9-linux-amd64.tar.gz", ".sha256sum",
				containerdWith(fixture.Entry{Name: "bin/runc", Mode: 0o755, Body: "#!/bin/sh\necho not runc\n"}))
			return map[string]string{"containerdVersion": "2.0.9"}, func() {}
		}, "cri", []string{"usr/local/bin/runc", "containerd 2.0.9 linux/amd64", "runc 1.1.12 linux/amd64"}},
		{"two steps", func(s *stand) (map[string]string, func()) {
			s.publish("containerd/v2.0.9/containerd-2.0.9-linux-amd64.tar.gz", ".sha256sum",
				containerdWith(fixture.Entry{Name: "bin/kubelet", Mode: 0o755, Body: "#!/bin/sh\necho not kubelet\n"}))
			return map[string]string{"containerdVersion": "2.0.9"}, func() {}
		}, "kube|cri", []string{"usr/local/bin/kubelet", "step kube", "step cri"}},
		{"one member twice", func(s *stand) (map[string]string, func()) {
			// The plan's CNI version itself: keep the good release to put back.
			undo := s.keep("cni/v1.5.1/cni-plugins-linux-amd64-v1.5.1.tgz", "cni/v1.5.1/cni-plugins-linux-amd64-v1.5.1.tgz.sha256")
			s.publish("cni/v1.5.1/cni-plugins-linux-amd64-v1.5.1.tgz", ".sha256", []fixture.Entry{
				{Name: "./bridge", Mode: 0o755, Body: "#!/bin/sh\necho bridge one\n"},
				{Name: "./host-local", Mode: 0o755, Body: "#!/bin/sh\necho host-local\n"},
				{Name: "./loopback", Mode: 0o755, Body: "#!/bin/sh\necho loopback\n"},
				{Name: "bridge", Mode: 0o755, Body: "#!/bin/sh\necho bridge two\n"},
			})
			return nil, undo
		}, "cni", []string{"opt/cni/bin/bridge", "./bridge", "bridge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStand(t)
			extra, undo := tc.setup(s)
			for apply := 1; apply <= 2; apply++ {
				st := statusOf(s.run(extra, false))
				var failed []string
				for _, id := range strings.Split(tc.step, "|") {
					if strings.HasPrefix(st[id], "failed") {
						failed = append(failed, id)
					}
				}
				if len(failed) != 1 {
					t.Fatalf("apply %d: %v, want exactly one of %s failed", apply, st, tc.step)
				}
				for _, w := range tc.want {
					if !strings.Contains(st[failed[0]], w) {
						t.Errorf("apply %d: %s: %s, want it to name %q", apply, failed[0], st[failed[0]], w)
					}
				}
			}
			// Without the conflicting artifact, everything converges.
			undo()
			for _, st := range s.run(nil, false).Steps {
				if st.Status != engine.StatusChanged && st.Status != engine.StatusUnchanged {
					t.Errorf("after the conflict is gone: %s %s %s", st.ID, st.Status, st.Error)
				}
			}
			rep := s.run(nil, false)
			for _, st := range rep.Steps {
				if st.Status != engine.StatusUnchanged {
					t.Errorf("after the conflict is gone, second apply: %s %s %s", st.ID, st.Status, st.Error)
				}
			}
		})
	}
}

// TestRenamedStepTakesOverItsPaths: a step renamed in the plan finds the
// paths it installs claimed by its old id, which the plan no longer has:
// it takes them over instead of failing every apply.
func TestRenamedStepTakesOverItsPaths(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	p := parse(t, standOptions(t), fmt.Sprintf("  plugins:\n    type: download-cni\n    with: {machineDir: %s, arch: amd64, baseURL: %q}\n", s.machine(), s.mirror+"/cni"))
	for round, want := range []engine.Status{engine.StatusChanged, engine.StatusUnchanged} {
		if r := applyPlan(t, p).Steps[0]; r.Status != want {
			t.Fatalf("round %d: plugins %s (%s), want %s", round, r.Status, r.Error, want)
		}
	}
}

// TestFilesNoLongerInstalledAreRemoved: dropping a binary from the plan, or
// moving installDir, removes what the step installed before, so the machine
// is what a fresh provisioning with the new plan makes; a file changed
// since it was installed is left alone.
func TestFilesNoLongerInstalledAreRemoved(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	bin := filepath.Join(s.machine(), "usr/local/bin")
	if err := os.WriteFile(filepath.Join(bin, "kubectl"), []byte("edited by hand"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, g := s.planWith(standOptions(t), nil)
	replaceStep(t, p, "kube", standOptions(t), func(params any) {
		params.(*steps.KubeParams).Binaries = []steps.Name{"kubelet"}
	})
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if st := statusOf(rep)["kube"]; st != "changed" {
		t.Fatalf("kube: %s", st)
	}
	if _, err := os.Stat(filepath.Join(bin, "kube-proxy")); !os.IsNotExist(err) {
		t.Errorf("kube-proxy, no longer in the plan, is still installed: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(bin, "kubectl")); err != nil || string(b) != "edited by hand" {
		t.Errorf("kubectl, changed by hand, was touched: %q %v", b, err)
	}
	for _, f := range []string{"kubelet", "crictl"} {
		if _, err := os.Stat(filepath.Join(bin, f)); err != nil {
			t.Errorf("%s is gone: %v", f, err)
		}
	}
}
