package steps_test

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// TestImageSymlinksCannotRedirectWrites: an image whose etc, usr/local/bin
// and opt/cni/bin are symlinks to absolute host paths makes the steps fail;
// nothing is written outside the machine directory.
func TestImageSymlinksCannotRedirectWrites(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	host := t.TempDir()
	hostEtc, hostBin, hostCNI := filepath.Join(host, "etc"), filepath.Join(host, "bin"), filepath.Join(host, "cni")
	for _, d := range []string{hostEtc, hostBin, hostCNI} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hostile := fixture.Image("amd64", fixture.Layer([]fixture.Entry{
		{Name: "etc", Type: tar.TypeSymlink, Linkname: hostEtc},
		{Name: "usr/local/bin", Type: tar.TypeSymlink, Linkname: hostBin},
		{Name: "opt/cni/bin", Type: tar.TypeSymlink, Linkname: hostCNI},
	}))
	s.push("rootfsctl/hostile:v1", fixture.Index(map[string]v1.Image{"amd64": hostile}))
	_, g := s.plan(map[string]string{"image": s.registry + "/rootfsctl/hostile:v1"})
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{FailurePolicy: engine.KeepGoing, Logger: zerolog.Nop(), LockDir: s.lockDir})
	if err != nil {
		t.Fatal(err)
	}
	st := statusOf(rep)
	if st["workspace"] != "changed" {
		t.Fatalf("workspace: %s", st["workspace"])
	}
	for _, id := range []string{"kube", "cri", "cni", "os", "resolved"} {
		if !strings.HasPrefix(st[id], "failed") || !strings.Contains(st[id], "escapes") {
			t.Errorf("%s: %s, want a failure saying the path escapes", id, st[id])
		}
	}
	for _, d := range []string{hostEtc, hostBin, hostCNI} {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Errorf("host directory %s was written to: %v", d, entries)
		}
	}
}

// TestResolvConfSymlinkToHost: an image whose etc/resolv.conf points at a
// host file gets a regular file in the machine; the host file is untouched.
func TestResolvConfSymlinkToHost(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	hostFile := filepath.Join(t.TempDir(), "precious.conf")
	if err := os.WriteFile(hostFile, []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := fixture.Image("amd64", fixture.Layer([]fixture.Entry{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/resolv.conf", Type: tar.TypeSymlink, Linkname: hostFile},
		{Name: "etc/hostname", Type: tar.TypeSymlink, Linkname: hostFile},
	}))
	s.push("rootfsctl/resolv:v1", fixture.Index(map[string]v1.Image{"amd64": img}))
	rep := s.run(map[string]string{"image": s.registry + "/rootfsctl/resolv:v1"}, false)
	for _, id := range []string{"workspace", "os", "resolved"} {
		if got := statusOf(rep)[id]; got != string(engine.StatusChanged) {
			t.Errorf("%s: %s", id, got)
		}
	}
	if b, _ := os.ReadFile(hostFile); string(b) != "host data\n" {
		t.Errorf("host file changed: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(s.machine(), "etc/resolv.conf"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("machine etc/resolv.conf: %v %v, want a regular file", fi, err)
	}
}
