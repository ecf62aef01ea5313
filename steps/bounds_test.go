package steps_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

// checkWithin runs Check and fails the test if it does not return (a read
// of a fifo or of an endless file would not).
func checkWithin(t *testing.T, s engine.Step) (engine.Change, error) {
	t.Helper()
	type result struct {
		ch  engine.Change
		err error
	}
	done := make(chan result, 1)
	go func() { ch, err := s.Check(ctx()); done <- result{ch, err} }()
	select {
	case r := <-done:
		return r.ch, r.err
	case <-time.After(20 * time.Second):
		t.Fatal("Check() did not return: an unbounded read")
		return engine.Change{}, nil
	}
}

// TestHostFilesAreReadWithinBounds: every host file a step reads has a
// limit and must be a regular file: resolvConf (a fifo or device would
// block or never end), the nspawn settings being compared, and the
// install records in the machine. Hitting a limit is a clear error.
func TestHostFilesAreReadWithinBounds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("nameserver 127.0.0.1\n"), 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	machine := filepath.Join(dir, "machine")
	if err := os.MkdirAll(filepath.Join(machine, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, resolv, want string
	}{
		{"fifo", fifo, "not a regular file"},
		{"character device", "/dev/zero", "not a regular file"},
		{"larger than any resolv.conf", big, "larger than"},
	} {
		t.Run("resolvConf "+tc.name, func(t *testing.T) {
			t.Parallel()
			s := build(t, fmt.Sprintf("    type: disable-resolved\n    with: {machineDir: %s, resolvConf: %s}\n", machine, tc.resolv))
			if _, err := checkWithin(t, s); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.resolv) {
				t.Errorf("Check(): %v, want an error naming %s and saying %q", err, tc.resolv, tc.want)
			}
		})
	}
	t.Run("nspawn settings that are a fifo", func(t *testing.T) {
		t.Parallel()
		s := build(t, fmt.Sprintf("    type: ensure-workspace\n    with: {machineDir: %s/m/kube1, image: \"oci:%s/layout\", nspawnConfig: %s, serviceOverride: %s/o.conf}\n", dir, dir, fifo, dir))
		if _, err := checkWithin(t, s); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Check(): %v, want a refusal of the fifo", err)
		}
	})
	t.Run("an OCI layout whose index is a fifo", func(t *testing.T) {
		t.Parallel()
		layoutDir := filepath.Join(t.TempDir(), "layout")
		if err := os.MkdirAll(filepath.Join(layoutDir, "blobs", "sha256"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(layoutDir, "index.json"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := build(t, fmt.Sprintf("    type: ensure-workspace\n    with: {machineDir: %s/m/kube1, image: \"oci:%s\", nspawnConfig: %s/n.nspawn, serviceOverride: %s/o.conf}\n", dir, layoutDir, dir, dir))
		done := make(chan error, 1)
		go func() { done <- s.Apply(ctx()) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "index.json is not a regular file") {
				t.Errorf("Apply(): %v, want the fifo refused", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Apply() blocked on a fifo in the layout")
		}
	})
	t.Run("install record beyond any size rootfsctl writes", func(t *testing.T) {
		t.Parallel()
		m := filepath.Join(t.TempDir(), "m")
		record := filepath.Join(m, steps.StateDir, "step-s.json")
		if err := os.MkdirAll(filepath.Dir(record), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(record, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(record, 1<<30); err != nil { // sparse: no disk used
			t.Fatal(err)
		}
		s := build(t, fmt.Sprintf("    type: download-cni\n    with: {machineDir: %s, arch: amd64}\n", m))
		if _, err := checkWithin(t, s); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("Check(): %v, want a clear error about the record's size", err)
		}
	})
}

// TestSkippedXattrsSayWhy: the warning about extended attributes that were
// not kept says why: not running as root, or a file system (or namespace)
// that does not support them. As root, the second must not be reported as
// the first.
func TestSkippedXattrsSayWhy(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	img := fixture.Image("amd64", fixture.Layer([]fixture.Entry{
		{Name: "etc/", Type: '5', UID: os.Getuid(), GID: os.Getgid()},
		{Name: "etc/tool", Mode: 0o755, UID: os.Getuid(), GID: os.Getgid(), Body: "x", Xattrs: map[string]string{"vendor.note": "no file system has this namespace"}},
	}))
	s.push("rootfsctl/xattr:v1", fixture.Index(map[string]v1.Image{"amd64": img}))
	var log bytes.Buffer
	rep, err := s.apply(mustCache(t), zerolog.New(zerolog.SyncWriter(&log)), map[string]string{"image": s.registry + "/rootfsctl/xattr:v1"})
	if err != nil {
		t.Fatal(err)
	}
	if st := statusOf(rep)["workspace"]; st != "changed" {
		t.Fatalf("workspace: %s", st)
	}
	var unsupported, unprivileged bool
	for _, ev := range events(t, log.Bytes()) {
		msg, _ := ev["message"].(string)
		if strings.Contains(msg, "does not support") && ev["xattrs"] == float64(1) {
			unsupported = true
		}
		if strings.Contains(msg, "not running as root") {
			unprivileged = true
		}
	}
	if !unsupported {
		t.Errorf("no warning that the file system does not support the image's xattr; log:\n%s", log.String())
	}
	if unprivileged {
		t.Errorf("an unsupported xattr was reported as skipped for lack of root; log:\n%s", log.String())
	}
}
