package steps_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestProvisionDemoPlan applies the shipped demo plan against a real
// registry and mirror on loopback and checks the machine, then that a
// second apply changes nothing at all.
func TestProvisionDemoPlan(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	rep := s.run(nil, false)
	wantAll(t, rep, engine.StatusChanged)
	m := s.machine()

	for _, bin := range []string{"kubelet", "kubectl", "kube-proxy", "crictl", "containerd", "ctr", "containerd-shim-runc-v2", "runc"} {
		fi, err := os.Stat(filepath.Join(m, "usr/local/bin", bin))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("usr/local/bin/%s: %v %v, want mode 0755", bin, fi, err)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(m, "usr/local/bin/kubelet")), "Kubernetes v1.33.1") {
		t.Error("kubelet is not the mirror's 1.33.1")
	}
	cni, _ := os.ReadDir(filepath.Join(m, "opt/cni/bin"))
	var names []string
	for _, e := range cni {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "bridge host-local loopback portmap" {
		t.Errorf("opt/cni/bin holds %v, want the four plugins and no LICENSE or README", names)
	}
	if got := readFile(t, filepath.Join(m, "etc/arch")); got != "amd64\n" {
		t.Errorf("etc/arch: %q, want the amd64 image", got)
	}
	if fi, err := os.Lstat(filepath.Join(m, "etc/resolv.conf")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("etc/resolv.conf: %v, want a regular file", fi)
	}
	if readFile(t, filepath.Join(m, "etc/resolv.conf")) != readFile(t, s.resolv) {
		t.Error("etc/resolv.conf differs from the host's")
	}
	if target, err := os.Readlink(filepath.Join(m, "etc/systemd/system/systemd-resolved.service")); err != nil || target != "/dev/null" {
		t.Errorf("systemd-resolved: %q %v, want a /dev/null symlink", target, err)
	}
	if got := readFile(t, filepath.Join(m, "etc/hostname")); got != "demo1\n" {
		t.Errorf("etc/hostname: %q", got)
	}
	if got := readFile(t, filepath.Join(m, "etc/modules-load.d/kubernetes.conf")); !strings.HasSuffix(got, "overlay\nbr_netfilter\n") {
		t.Errorf("modules: %q", got)
	}
	if got := readFile(t, filepath.Join(m, "etc/tmpfiles.d/kmsg.conf")); !strings.Contains(got, "L /dev/kmsg - - - - /dev/console\n") {
		t.Errorf("kmsg.conf: %q", got)
	}
	// Layer semantics: whiteout, opaque directory, hard link.
	if _, err := os.Stat(filepath.Join(m, "var/cache/apt/keep.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("whiteout did not remove var/cache/apt/keep.txt")
	}
	if _, err := os.Stat(filepath.Join(m, "var/cache/apt/archives/old.deb")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("opaque directory kept var/cache/apt/archives/old.deb")
	}
	a, _ := os.Stat(filepath.Join(m, "usr/bin/tool"))
	b, _ := os.Stat(filepath.Join(m, "usr/bin/tool-again"))
	if !os.SameFile(a, b) {
		t.Error("usr/bin/tool-again is not a hard link of usr/bin/tool")
	}
	if fi, _ := os.Stat(filepath.Join(m, "usr/bin/passwd")); fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("usr/bin/passwd lost its setuid bit: %v", fi.Mode())
	}
	if strings.Contains(readFile(t, filepath.Join(m, steps.StateDir, "step-kube.json")), "forged") {
		t.Error("the image's forged install record survived")
	}

	// The nspawn settings, against golden files.
	for file, golden := range map[string]string{
		filepath.Join(s.out, "etc/systemd/nspawn/demo1.nspawn"):                                 "demo1.nspawn",
		filepath.Join(s.out, "etc/systemd/system/systemd-nspawn@demo1.service.d/override.conf"): "override.conf",
	} {
		checkGolden(t, golden, []byte(readFile(t, file)))
	}

	// A second apply changes nothing, not even a modification time.
	before := manifest(t, s.out)
	rep = s.run(nil, false)
	wantAll(t, rep, engine.StatusUnchanged)
	if d := diffManifests(before, manifest(t, s.out)); len(d) > 0 {
		t.Errorf("second apply changed files:\n%s", strings.Join(d, "\n"))
	}
}
