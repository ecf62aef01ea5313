package steps_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestPlatformSelection: only the requested platform's manifest and layers
// are fetched from a multi-platform index.
func TestPlatformSelection(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	amd := fixture.NodeImage("amd64")
	amdLayers, _ := amd.Layers()
	rep := s.run(map[string]string{"arch": "arm64"}, false)
	wantAll(t, rep, engine.StatusChanged)
	if got := readFile(t, filepath.Join(s.machine(), "etc/arch")); got != "arm64\n" {
		t.Errorf("etc/arch: %q, want arm64", got)
	}
	if got := readFile(t, filepath.Join(s.machine(), "etc/apt/sources.list")); !strings.Contains(got, "ports.ubuntu.com") {
		t.Errorf("arm64 sources.list does not use the ports mirror:\n%s", got)
	}
	amdManifest, _ := amd.Digest()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.regPaths {
		if strings.Contains(p, amdManifest.String()) {
			t.Errorf("fetched the amd64 manifest: %s", p)
		}
		for _, l := range amdLayers {
			d, _ := l.Digest()
			if strings.Contains(p, d.String()) && !strings.HasPrefix(p, "HEAD") {
				// The two images share the second layer; only amd64's first layer differs.
				if first, _ := amdLayers[0].Digest(); d == first {
					t.Errorf("fetched an amd64-only layer: %s", p)
				}
			}
		}
	}
}

func TestDigestReference(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	img := fixture.NodeImage("amd64")
	ref, _ := name.ParseReference(s.registry + "/rootfsctl/single:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	rep := s.run(map[string]string{"image": s.registry + "/rootfsctl/single@" + d.String()}, false)
	wantAll(t, rep, engine.StatusChanged)
	if !strings.Contains(readFile(t, filepath.Join(s.machine(), steps.StateDir, "workspace.json")), d.String()) {
		t.Error("workspace record does not hold the pinned digest")
	}
	rep = s.run(map[string]string{"image": s.registry + "/rootfsctl/single@" + d.String()}, false)
	wantAll(t, rep, engine.StatusUnchanged)
}

// TestImageChange covers onImageChange: fail, keep and recreate.
func TestImageChange(t *testing.T) {
	t.Parallel()
	s := provisioned(t)
	v2 := fixture.Image("amd64", fixture.Layer(fixture.RootFS("amd64")), fixture.Layer([]fixture.Entry{{Name: "etc/version", Body: "v2\n"}}))
	ref, _ := name.ParseReference(s.registry + "/rootfsctl/demo-node:v2")
	if err := remote.Write(ref, v2); err != nil {
		t.Fatal(err)
	}
	img := s.registry + "/rootfsctl/demo-node:v2"

	rep := s.run(map[string]string{"image": img}, false)
	if st := statusOf(rep)["workspace"]; !strings.HasPrefix(st, "failed: check: machine holds another image") {
		t.Errorf("onImageChange fail: workspace %s", st)
	}
	if _, err := os.Stat(filepath.Join(s.machine(), "etc/version")); err == nil {
		t.Error("onImageChange fail changed the rootfs")
	}
	rep = s.run(map[string]string{"image": img, "onImageChange": "keep"}, false)
	if st := statusOf(rep)["workspace"]; st != "unchanged" {
		t.Errorf("onImageChange keep: workspace %s", st)
	}
	rep = s.run(map[string]string{"image": img, "onImageChange": "recreate"}, false)
	wantAll(t, rep, engine.StatusChanged) // a new rootfs: every step installs again
	if got := readFile(t, filepath.Join(s.machine(), "etc/version")); got != "v2\n" {
		t.Errorf("after recreate: etc/version %q", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(s.machine()))
	if len(entries) != 1 {
		t.Errorf("machines dir holds %d entries after recreate, want only demo1 (no staging or old dirs)", len(entries))
	}
}

// TestInterruptedUnpackIsNeverAccepted: leftovers of a crash (a staging
// directory beside the machine) are removed, and a half-filled machine
// directory without a workspace record is not taken for a rootfs.
func TestInterruptedUnpackIsNeverAccepted(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	stale := filepath.Join(filepath.Dir(s.machine()), ".demo1.rootfsctl-staging-123")
	if err := os.MkdirAll(filepath.Join(stale, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	rep := s.run(nil, false)
	wantAll(t, rep, engine.StatusChanged)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staging leftover still there: %v", err)
	}

	other := newStand(t)
	if err := os.MkdirAll(filepath.Join(other.machine(), "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	rep = other.run(nil, false)
	if st := statusOf(rep)["workspace"]; !strings.Contains(st, "rootfsctl did not unpack") {
		t.Errorf("half-filled machine dir: workspace %s, want a refusal", st)
	}
}

// TestPlatformVariantInTheIndex: an index whose arm64 entry names a variant
// (linux/arm64/v8, as Docker Hub's do) is chosen for a plan asking for
// linux/arm64, and the next apply finds the machine up to date.
func TestPlatformVariantInTheIndex(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: fixture.NodeImage("amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: fixture.NodeImage("arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}})
	s.push("rootfsctl/variant:v1", idx)
	vars := map[string]string{"arch": "arm64", "image": s.registry + "/rootfsctl/variant:v1"}
	wantAll(t, s.run(vars, false), engine.StatusChanged)
	wantAll(t, s.run(vars, false), engine.StatusUnchanged)
	vars["onImageChange"] = "recreate"
	wantAll(t, s.run(vars, false), engine.StatusUnchanged)
}

// TestStalledLayerIsGivenUp: a registry that stops sending in the middle
// of a layer blob is given up on after the fetch client's idle timeout,
// as an artifact download is, instead of holding the run until the step's
// timeout (or for ever without one).
func TestStalledLayerIsGivenUp(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s.setRegistryFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") || r.Header.Get("X-Inner") != "" {
			return false
		}
		// The real blob, from the registry itself, then half of it and silence.
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.registry+r.URL.Path, nil)
		req.Header.Set("X-Inner", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		blob, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(blob) < 200 { // the config: let it through whole
			w.Write(blob)
			return true
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.WriteHeader(http.StatusOK)
		w.Write(blob[:len(blob)/2])
		w.(http.Flusher).Flush()
		select { // silence, until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	opts := steps.Options{Fetch: fetch.New("t", fetch.WithRetries(1, time.Millisecond), fetch.WithIdleTimeout(300*time.Millisecond)), Cache: mustCache(t)}
	_, g := s.planWith(opts, nil)
	done := make(chan *engine.Report, 1)
	go func() {
		rep, _ := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir(), Targets: []string{"workspace"}})
		done <- rep
	}()
	select {
	case rep := <-done:
		if st := statusOf(rep)["workspace"]; !strings.Contains(st, "sent no data") {
			t.Errorf("workspace: %s, want it to give up on the silent registry", st)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a stalled layer held the run")
	}
}

// TestMountPointMachineDirectory: an empty machine directory that is a
// mount point cannot take the rename that puts an unpacked rootfs in place:
// preflight says so, and apply fails at once (not after three unpacks).
func TestMountPointMachineDirectory(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	s := newStand(t)
	if err := os.MkdirAll(s.machine(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", s.machine(), "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(s.machine(), 0) })
	_, g := s.planWith(standOptions(t), nil)
	pre, _ := engine.Preflight(context.Background(), g, engine.PreflightOptions{})
	found := false
	for _, c := range pre.Checks {
		found = found || (c.Severity == engine.SeverityError && strings.Contains(c.Message, "is a mount point"))
	}
	if !found {
		t.Errorf("preflight did not say the machine directory is a mount point:\n%s", table(pre))
	}
	rep := s.run(nil, false)
	if r := rep.Steps[0]; r.Status != engine.StatusFailed || r.Attempts != 1 || !strings.Contains(r.Error, "is a mount point") {
		t.Errorf("workspace: %s after %d attempts: %s", r.Status, r.Attempts, r.Error)
	}
}

// TestPreflightWarnsAboutMissingBindSources: a bind source missing on the
// host is a warning (the machine would not start), not an error.
func TestPreflightWarnsAboutMissingBindSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := fmt.Sprintf("  ws:\n    type: ensure-workspace\n    with: {machineDir: %s/m/kube1, image: \"oci:%s/layout\", nspawnConfig: %s/k.nspawn, serviceOverride: %s/o.conf, bindReadOnly: [%s], hostDevices: [/dev/nonexistent-device]}\n", dir, dir, dir, dir, dir)
	g, err := engine.NewGraph(parse(t, steps.Options{Cache: mustCache(t)}, src))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := engine.Preflight(context.Background(), g, engine.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	for _, c := range rep.Checks {
		if c.Name == "nspawn-machine-provisioning" && c.Severity == engine.SeverityWarning {
			warned = append(warned, c.Target)
		}
	}
	if len(warned) != 1 || warned[0] != "bind source /dev/nonexistent-device" {
		t.Errorf("warnings for %v, want only the missing device", warned)
	}
}
