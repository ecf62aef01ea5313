package steps_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestCorruptedBinaryOnlyItsStepChanges: damage one installed binary; the
// plan shows only its step, and apply repairs only that.
func TestCorruptedBinaryOnlyItsStepChanges(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	kubelet := filepath.Join(s.machine(), "usr/local/bin/kubelet")
	if err := os.WriteFile(kubelet, []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plan := statusOf(s.run(nil, true))
	for id, st := range plan {
		want := "unchanged"
		if id == "kube" {
			want = "would-change"
		}
		if st != want {
			t.Errorf("plan: %s is %s, want %s", id, st, want)
		}
	}
	rep := s.run(nil, false)
	for _, st := range rep.Steps {
		want := engine.StatusUnchanged
		if st.ID == "kube" {
			want = engine.StatusChanged
			if st.Message != "usr/local/bin/kubelet was modified" {
				t.Errorf("kube reason: %q", st.Message)
			}
		}
		if st.Status != want {
			t.Errorf("apply: %s is %s, want %s", st.ID, st.Status, want)
		}
	}
	if !strings.Contains(readFile(t, kubelet), "Kubernetes v1.33.1") {
		t.Error("kubelet was not repaired")
	}
}

// TestVersionChange: a new containerd version changes only cri and the
// files it owns.
func TestVersionChange(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	before := manifest(t, s.machine())
	rep := s.run(map[string]string{"containerdVersion": "2.1.0"}, false)
	for _, st := range rep.Steps {
		want := engine.StatusUnchanged
		if st.ID == "cri" {
			want = engine.StatusChanged
		}
		if st.Status != want {
			t.Errorf("%s: %s, want %s", st.ID, st.Status, want)
		}
	}
	owned := map[string]bool{"usr/local/bin/containerd": true, "usr/local/bin/ctr": true, "usr/local/bin/containerd-shim-runc-v2": true,
		"usr/local/bin/containerd-stress": true, "var/lib/rootfsctl/step-cri.json": true}
	changed := 0
	for _, d := range diffManifests(before, manifest(t, s.machine())) {
		changed++
		if !owned[d[:strings.Index(d, ":")]] {
			t.Errorf("version change touched %s", d)
		}
	}
	if changed != len(owned) {
		t.Errorf("version change changed %d paths, want the %d containerd files and cri's record", changed, len(owned))
	}
	if !strings.Contains(readFile(t, filepath.Join(s.machine(), "usr/local/bin/containerd")), "v2.1.0") {
		t.Error("containerd is not 2.1.0")
	}
}

// TestChecksumMismatchKeepsPreviousFile: a corrupted artifact on the mirror
// fails its step with a clear message and the installed binary stays.
func TestChecksumMismatchKeepsPreviousFile(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	runc := filepath.Join(s.machine(), "usr/local/bin/runc")
	good := readFile(t, runc)
	// New version on the mirror whose binary does not match its checksum.
	spec := fixture.DefaultMirror
	spec.Runc = "1.2.0"
	if err := fixture.WriteMirror(s.mirrorDir, spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.mirrorDir, "runc/v1.2.0/runc.amd64"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, g := s.plan(nil)
	for _, st := range p.Steps {
		if st.ID == "cri" {
			st.Impl = mustRebuildCRI(t, s, "1.2.0")
		}
	}
	rep, _ := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: s.lockDir})
	st := statusOf(rep)["cri"]
	if !strings.Contains(st, "download runc 1.2.0 linux/amd64: verify sha256: got ") || !strings.Contains(st, "nothing was installed") {
		t.Errorf("cri: %s, want a checksum mismatch", st)
	}
	if strings.Contains(st, "http://") {
		t.Errorf("cri error names a URL: %s", st)
	}
	if readFile(t, runc) != good {
		t.Error("the installed runc was replaced by a bad download")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(s.machine(), "usr/local/bin", steps.TempPrefix+"*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// mustRebuildCRI builds a cri step for another runc version through the
// plan loader (the demo plan has no runc version var).
func mustRebuildCRI(t *testing.T, s *stand, runc string) engine.Step {
	t.Helper()
	src := fmt.Sprintf("  cri:\n    type: download-cri\n    with:\n      machineDir: %s\n      arch: amd64\n      containerd: {baseURL: %s/containerd}\n      runc: {version: %s, baseURL: %s/runc}\n",
		s.machine(), s.mirror, runc, s.mirror)
	return parse(t, standOptions(t), src).Steps[0].Impl
}

// TestMirrorFaults: 404 fails clearly; 500 then success, a truncated body
// and a stalled body are retried (and resumed) to success.
func TestMirrorFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fault   func(n int32, w http.ResponseWriter, r *http.Request) bool
		wantErr string
	}{
		{"404", func(n int32, w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, "/kubelet") {
				http.NotFound(w, r)
				return true
			}
			return false
		}, "download kubelet 1.33.1 linux/amd64: GET " /* redacted URL follows */},
		{"500 then success", func(n int32, w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, "/kubelet") && n < 2 {
				http.Error(w, "busy", http.StatusInternalServerError)
				return true
			}
			return false
		}, ""},
		{"truncated body resumed", func(n int32, w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, "/kubelet") && n == 0 {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("#!/bin/sh\n"))
				return true
			}
			return false
		}, ""},
		{"stalled body", func(n int32, w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, "/kubelet") && n == 0 {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("#!/"))
				w.(http.Flusher).Flush()
				time.Sleep(time.Second) // beyond the 300ms idle timeout
				return true
			}
			return false
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStand(t)
			var calls atomic.Int32
			s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, "/kubelet") {
					return tc.fault(calls.Add(1)-1, w, r)
				}
				return false
			})
			rep := s.run(nil, false)
			st := statusOf(rep)["kube"]
			if tc.wantErr == "" {
				if st != "changed" {
					t.Fatalf("kube: %s, want changed after retries", st)
				}
				if !strings.Contains(readFile(t, filepath.Join(s.machine(), "usr/local/bin/kubelet")), "Kubernetes v1.33.1") {
					t.Error("kubelet content is wrong after the retry")
				}
				return
			}
			if !strings.Contains(st, tc.wantErr) || !strings.Contains(st, "404 Not Found") {
				t.Errorf("kube: %s, want %q and 404", st, tc.wantErr)
			}
			if _, err := os.Stat(filepath.Join(s.machine(), "usr/local/bin/kubelet")); !errors.Is(err, fs.ErrNotExist) {
				t.Error("a kubelet appeared despite the 404")
			}
		})
	}
}

// TestHostileArtifactArchives: archive members with absolute names, "..",
// backslashes, or a wanted member that is a symlink, fail the step; nothing
// is installed and nothing outside the machine is written.
func TestHostileArtifactArchives(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []fixture.Entry
		want    string
	}{
		{"dotdot", []fixture.Entry{{Name: "./bridge", Mode: 0o755, Body: "x"}, {Name: "../../../../" + outside + "/evil", Mode: 0o755, Body: "x"}}, "escapes the archive"},
		{"absolute", []fixture.Entry{{Name: outside + "/evil", Mode: 0o755, Body: "x"}}, "absolute path"},
		{"backslash", []fixture.Entry{{Name: `.\evil`, Mode: 0o755, Body: "x"}}, "backslash"},
		{"symlink plugin", []fixture.Entry{{Name: "./bridge", Type: tar.TypeSymlink, Linkname: outside + "/evil"}, {Name: "./host-local", Mode: 0o755, Body: "x"}, {Name: "./loopback", Mode: 0o755, Body: "x"}}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := provisioned(t)
			s.publish("cni/v1.5.9/cni-plugins-linux-amd64-v1.5.9.tgz", ".sha256", tc.entries)
			before := manifest(t, filepath.Join(s.machine(), "opt/cni/bin"))
			src := fmt.Sprintf("  cni:\n    type: download-cni\n    with: {machineDir: %s, arch: amd64, version: 1.5.9, baseURL: %s/cni}\n", s.machine(), s.mirror)
			rep := applyPlan(t, parse(t, standOptions(t), src))
			if st := statusOf(rep)["cni"]; !strings.Contains(st, tc.want) {
				t.Errorf("cni: %s, want a refusal containing %q", st, tc.want)
			}
			if d := diffManifests(before, manifest(t, filepath.Join(s.machine(), "opt/cni/bin"))); len(d) > 0 {
				t.Errorf("the hostile archive changed installed plugins: %v", d)
			}
			if entries, _ := os.ReadDir(outside); len(entries) > 0 {
				t.Errorf("written outside: %v", entries)
			}
		})
	}
}

// TestHugeInstalledFileIsNotRead: the machine is untrusted; an installed
// binary replaced by a 1 TiB sparse file is "modified" at once, by its
// size, without being read (hashing it would take most of an hour).
func TestHugeInstalledFileIsNotRead(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	kubelet := filepath.Join(s.machine(), "usr/local/bin/kubelet")
	if err := os.Truncate(kubelet, 1<<40); err != nil {
		t.Skipf("this file system cannot hold a 1 TiB sparse file: %v", err)
	}
	rep := s.run(nil, true)
	if r := statusOf(rep)["kube"]; !strings.Contains(r, "would-change") {
		t.Errorf("kube: %s", r)
	}
	for _, st := range rep.Steps {
		if st.ID == "kube" && st.Message != "usr/local/bin/kubelet was modified" {
			t.Errorf("kube's reason: %q", st.Message)
		}
	}
}
