package steps_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
)

// TestURLTemplates: whole-URL templates with named placeholders resolve
// to the mirror, and the checksums are found next to them in the upstream
// formats (runc's one file for all architectures beside the binary).
func TestURLTemplates(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	m := s.mirror
	src := downloadSteps(s.machine(), "tpl", sources{
		kube:       `url: "` + m + `/kube/v{version}/bin/{os}/{arch}/{binary}"`,
		crictl:     `url: "` + m + `/cri-tools/v{version}/crictl-v{version}-{os}-{arch}.tar.gz"`,
		containerd: `url: "` + m + `/containerd/v{version}/containerd-{version}-{os}-{arch}.tar.gz"`,
		runc:       `url: "` + m + `/runc/v{version}/runc.{arch}"`,
		cni:        `url: "` + m + `/cni/v{version}/cni-plugins-{os}-{arch}-v{version}.tgz"`,
	})
	p := parse(t, standOptions(t), src)
	moved := strings.NewReplacer("opt/tpl/bin", "usr/local/bin", "opt/tpl/cni", "opt/cni/bin")
	files := []string{"opt/tpl/bin/kubelet", "opt/tpl/bin/crictl", "opt/tpl/bin/containerd", "opt/tpl/bin/runc", "opt/tpl/cni/loopback"}
	before := map[string]string{}
	for _, f := range files {
		before[f] = readFile(t, filepath.Join(s.machine(), moved.Replace(f)))
	}
	wantAll(t, applyPlan(t, p), engine.StatusChanged)
	for _, f := range files {
		if readFile(t, filepath.Join(s.machine(), f)) != before[f] {
			t.Errorf("%s differs from the baseURL-installed file", f)
		}
		// The steps moved their installDir: the old copies are gone.
		if _, err := os.Stat(filepath.Join(s.machine(), moved.Replace(f))); !os.IsNotExist(err) {
			t.Errorf("%s is still installed after the move: %v", moved.Replace(f), err)
		}
	}
}

// TestMovingToAnotherMirrorChangesNothing: the same artifacts served from
// another address are the same artifacts. A provisioned machine whose plan
// now names another mirror is up to date, and nothing is requested from
// either mirror; a changed version still reinstalls that artifact only.
func TestMovingToAnotherMirrorChangesNothing(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.FileServer(http.Dir(s.mirrorDir)).ServeHTTP(w, r)
	}))
	t.Cleanup(other.Close)
	s.setFault(func(w http.ResponseWriter, r *http.Request) bool { hits.Add(1); return false })
	rep := s.run(map[string]string{"mirror": other.URL}, false)
	wantAll(t, rep, engine.StatusUnchanged)
	if n := hits.Load(); n != 0 {
		t.Errorf("moving to another mirror made %d requests, want none", n)
	}
	st := statusOf(s.run(map[string]string{"mirror": other.URL, "containerdVersion": "2.0.5"}, true))
	if st["cri"] != "would-change" || st["kube"] != "unchanged" || st["cni"] != "unchanged" {
		t.Errorf("a version change on the new mirror: %v, want only cri to change", st)
	}
}

// TestSignedMirrorURLs: a query string (a signed mirror's token) in a
// baseURL or a url template stays at the end of every URL built from it,
// the checksum files' included.
func TestSignedMirrorURLs(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	var unsigned atomic.Int32
	s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("token") != "s3cret" {
			unsigned.Add(1)
			http.Error(w, "unsigned", http.StatusForbidden)
			return true
		}
		return false
	})
	m := s.mirror
	src := downloadSteps(s.machine(), "signed", sources{
		kube:       `baseURL: "` + m + `/kube?token=s3cret"`,
		crictl:     `baseURL: "` + m + `/cri-tools?token=s3cret"`,
		containerd: `url: "` + m + `/containerd/v{version}/containerd-{version}-{os}-{arch}.tar.gz?token=s3cret"`,
		runc:       `url: "` + m + `/runc/v{version}/runc.{arch}?token=s3cret"`,
		cni:        `baseURL: "` + m + `/cni?token=s3cret#frag"`,
	})
	p := parse(t, standOptions(t), src)
	wantAll(t, applyPlan(t, p), engine.StatusChanged)
	if n := unsigned.Load(); n != 0 {
		t.Errorf("%d requests lost the token", n)
	}
	for _, f := range []string{"opt/signed/bin/kubelet", "opt/signed/bin/crictl", "opt/signed/bin/runc", "opt/signed/cni/loopback"} {
		if _, err := os.Stat(filepath.Join(s.machine(), f)); err != nil {
			t.Errorf("%s was not installed: %v", f, err)
		}
	}
}

// sources say where each artifact of downloadSteps comes from: the inside
// of a YAML flow mapping (url: "..." or baseURL: "...").
type sources struct{ kube, crictl, containerd, runc, cni string }

// downloadSteps are download-kube, -cri and -cni for machine, installing
// under opt/<dir>/bin (opt/<dir>/cni for the plugins) from src.
func downloadSteps(machine, dir string, src sources) string {
	return fmt.Sprintf(`  kube:
    type: download-kube
    with: {machineDir: %[1]s, arch: amd64, version: 1.33.1, installDir: opt/%[2]s/bin, %[3]s, crictl: {%[4]s}}
  cri:
    type: download-cri
    with: {machineDir: %[1]s, arch: amd64, installDir: opt/%[2]s/bin, containerd: {%[5]s}, runc: {%[6]s}}
  cni:
    type: download-cni
    with: {machineDir: %[1]s, arch: amd64, installDir: opt/%[2]s/cni, %[7]s}
`, machine, dir, src.kube, src.crictl, src.containerd, src.runc, src.cni)
}
