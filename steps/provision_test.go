package steps_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

// stand is a registry and an artifact mirror on loopback, with hooks to
// break the mirror and to see what the registry served.
type stand struct {
	t         *testing.T
	registry  string // host:port
	mirror    string // http://host:port
	mirrorDir string
	out       string // the demo plan's output dir
	resolv    string // the host resolv.conf the plan copies
	lockDir   string // machine locks of this stand's runs

	mu       sync.Mutex
	regPaths []string                                          // registry requests
	fault    func(w http.ResponseWriter, r *http.Request) bool // returns true when it answered
	regFault func(w http.ResponseWriter, r *http.Request) bool // the same for the registry
}

func newStand(t *testing.T) *stand {
	t.Helper()
	s := &stand{t: t, mirrorDir: t.TempDir(), out: t.TempDir(), lockDir: t.TempDir()}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	rs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.regPaths = append(s.regPaths, r.Method+" "+r.URL.Path)
		f := s.regFault
		s.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(rs.Close)
	s.registry = strings.TrimPrefix(rs.URL, "http://")
	spec := fixture.DefaultMirror
	if err := fixture.WriteMirror(s.mirrorDir, spec); err != nil {
		t.Fatal(err)
	}
	spec.Containerd = "2.1.0"
	if err := fixture.WriteMirror(s.mirrorDir, spec); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(s.mirrorDir))
	ms := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.fault
		s.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(ms.Close)
	s.mirror = ms.URL
	s.resolv = filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(s.resolv, []byte("nameserver 127.0.0.53\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.push("rootfsctl/demo-node:v1", fixture.Index(map[string]v1.Image{"amd64": fixture.NodeImage("amd64"), "arm64": fixture.NodeImage("arm64")}))
	s.mu.Lock()
	s.regPaths = nil // only what the steps fetch counts
	s.mu.Unlock()
	return s
}

func (s *stand) push(repoTag string, idx v1.ImageIndex) string {
	s.t.Helper()
	ref, err := name.ParseReference(s.registry + "/" + repoTag)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		s.t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := idx.Digest()
	return d.String()
}

func (s *stand) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *stand) setRegistryFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.regFault = f
	s.mu.Unlock()
}

func (s *stand) machine() string { return filepath.Join(s.out, "machines", "demo1") }

// plan loads the shipped demo plan pointed at this stand.
func (s *stand) plan(extra map[string]string) (*engine.Plan, *engine.Graph) {
	s.t.Helper()
	return s.planWith(steps.Options{
		Fetch: fetch.New("rootfsctl/test", fetch.WithRetries(3, 10*time.Millisecond), fetch.WithIdleTimeout(300*time.Millisecond)),
		Cache: mustCache(s.t),
	}, extra)
}

// planWith loads the demo plan with the given step options.
func (s *stand) planWith(opts steps.Options, extra map[string]string) (*engine.Plan, *engine.Graph) {
	s.t.Helper()
	reg := engine.NewRegistry()
	steps.Register(reg, opts)
	vars := map[string]string{"registry": s.registry, "mirror": s.mirror, "out": s.out, "resolvConf": s.resolv, "arch": "amd64"}
	for k, v := range extra {
		vars[k] = v
	}
	p, err := engine.Load("../plans/demo.yaml", engine.LoadOptions{Registry: reg, Host: host, Vars: vars})
	if err != nil {
		s.t.Fatalf("load plans/demo.yaml: %v", err)
	}
	g, err := engine.NewGraph(p)
	if err != nil {
		s.t.Fatal(err)
	}
	return p, g
}

func (s *stand) run(extra map[string]string, checkOnly bool) *engine.Report {
	s.t.Helper()
	_, g := s.plan(extra)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), CheckOnly: checkOnly, LockDir: s.lockDir})
	if err != nil {
		s.t.Fatal(err)
	}
	return rep
}

// apply runs the demo plan with extra vars and the given cache, for tests
// that share a cache between runs or run from several goroutines (it
// reports errors instead of failing the test).
func (s *stand) apply(c *cache.Cache, log zerolog.Logger, extra map[string]string) (*engine.Report, error) {
	reg := engine.NewRegistry()
	steps.Register(reg, steps.Options{Fetch: fetch.New("t", fetch.WithRetries(2, time.Millisecond)), Cache: c})
	vars := map[string]string{"registry": s.registry, "mirror": s.mirror, "out": s.out, "resolvConf": s.resolv, "arch": "amd64"}
	for k, v := range extra {
		vars[k] = v
	}
	p, err := engine.Load("../plans/demo.yaml", engine.LoadOptions{Registry: reg, Host: host, Vars: vars})
	if err != nil {
		return nil, err
	}
	g, err := engine.NewGraph(p)
	if err != nil {
		return nil, err
	}
	return engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: log, LockDir: s.lockDir})
}

func statusOf(rep *engine.Report) map[string]string {
	out := map[string]string{}
	for _, st := range rep.Steps {
		out[st.ID] = string(st.Status)
		if st.Error != "" {
			out[st.ID] += ": " + st.Error
		}
	}
	return out
}

func wantAll(t *testing.T, rep *engine.Report, status engine.Status) {
	t.Helper()
	for _, st := range rep.Steps {
		if st.Status != status {
			t.Errorf("step %s: %s (%s%s), want %s", st.ID, st.Status, st.Message, st.Error, status)
		}
	}
}

// manifest describes every entry under dir: type, mode, size, digest,
// symlink target. Two equal manifests mean nothing changed.
func manifest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(h[:]) + fmt.Sprint(" ", fi.ModTime().UnixNano())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffManifests(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestProvisionDemoPlan applies the shipped demo plan against a real
// registry and mirror on loopback and checks the machine, then that a
// second apply changes nothing at all.
func TestProvisionDemoPlan(t *testing.T) {
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

// TestPlatformSelection: only the requested platform's manifest and layers
// are fetched from a multi-platform index.
func TestPlatformSelection(t *testing.T) {
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
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
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

// TestCorruptedBinaryOnlyItsStepChanges: damage one installed binary; the
// plan shows only its step, and apply repairs only that.
func TestCorruptedBinaryOnlyItsStepChanges(t *testing.T) {
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
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
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
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
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
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
	reg := engine.NewRegistry()
	steps.Register(reg, steps.Options{Fetch: fetch.New("t", fetch.WithRetries(1, time.Millisecond)), Cache: mustCache(t)})
	src := fmt.Sprintf("apiVersion: rootfsctl/v1\nkind: Plan\nname: t\nsteps:\n  cri:\n    type: download-cri\n    with:\n      machineDir: %s\n      arch: amd64\n      containerd: {baseURL: %s/containerd}\n      runc: {version: %s, baseURL: %s/runc}\n",
		s.machine(), s.mirror, runc, s.mirror)
	p, err := engine.Parse("t.yaml", []byte(src), engine.LoadOptions{Registry: reg, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	return p.Steps[0].Impl
}

// TestMirrorFaults: 404 fails clearly; 500 then success, a truncated body
// and a stalled body are retried (and resumed) to success.
func TestMirrorFaults(t *testing.T) {
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

// checkGolden compares got with testdata/name; -update rewrites it.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s (go test -update creates it): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestSecondMachineDownloadsNothing: with a shared cache, provisioning a
// second machine fetches no artifact and no blob again (manifests are
// resolved; nothing else).
func TestSecondMachineDownloadsNothing(t *testing.T) {
	s := newStand(t)
	shared := mustCache(t)
	run := func(machine string) *engine.Report {
		reg := engine.NewRegistry()
		steps.Register(reg, steps.Options{Fetch: fetch.New("t", fetch.WithRetries(2, time.Millisecond)), Cache: shared})
		vars := map[string]string{"registry": s.registry, "mirror": s.mirror, "out": s.out, "resolvConf": s.resolv, "arch": "amd64", "machine": machine}
		p, err := engine.Load("../plans/demo.yaml", engine.LoadOptions{Registry: reg, Host: host, Vars: vars})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := engine.NewGraph(p)
		rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	wantAll(t, run("kube1"), engine.StatusChanged)
	var mirrorHits atomic.Int32
	s.setFault(func(w http.ResponseWriter, r *http.Request) bool { mirrorHits.Add(1); return false })
	s.mu.Lock()
	s.regPaths = nil
	s.mu.Unlock()
	wantAll(t, run("kube2"), engine.StatusChanged)
	if n := mirrorHits.Load(); n != 0 {
		t.Errorf("second machine: %d requests to the artifact mirror, want none", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.regPaths {
		if strings.Contains(p, "/blobs/") {
			t.Errorf("second machine fetched a blob: %s", p)
		}
	}
	if readFile(t, filepath.Join(s.out, "machines/kube2/usr/local/bin/kubelet")) != readFile(t, filepath.Join(s.out, "machines/kube1/usr/local/bin/kubelet")) {
		t.Error("kube2's kubelet differs from kube1's")
	}
}

// TestCorruptCacheEntryIsNotUsed: a damaged cache entry is caught on read,
// removed, and downloaded again.
func TestCorruptCacheEntryIsNotUsed(t *testing.T) {
	s := newStand(t)
	c := mustCache(t)
	apply := func() *engine.Report {
		reg := engine.NewRegistry()
		steps.Register(reg, steps.Options{Fetch: fetch.New("t", fetch.WithRetries(2, time.Millisecond)), Cache: c})
		vars := map[string]string{"registry": s.registry, "mirror": s.mirror, "out": s.out, "resolvConf": s.resolv, "arch": "amd64"}
		p, _ := engine.Load("../plans/demo.yaml", engine.LoadOptions{Registry: reg, Host: host, Vars: vars})
		g, _ := engine.NewGraph(p)
		rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	wantAll(t, apply(), engine.StatusChanged)
	kubelet := filepath.Join(s.machine(), "usr/local/bin/kubelet")
	good := readFile(t, kubelet)
	sum := sha256.Sum256([]byte(good))
	entry := filepath.Join(c.Dir(), "sha256", hex.EncodeToString(sum[:]))
	if err := os.WriteFile(entry, []byte("#!/bin/sh\necho cache poisoned\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(kubelet); err != nil {
		t.Fatal(err)
	}
	rep := apply()
	if st := statusOf(rep)["kube"]; st != "changed" {
		t.Errorf("kube: %s, want changed (a retry after the bad entry was dropped)", st)
	}
	if got := readFile(t, kubelet); got != good {
		t.Errorf("kubelet after repair: %q, want the mirror's", got)
	}
	if got, _ := os.ReadFile(entry); string(got) != good {
		t.Errorf("cache entry not replaced: %q", got)
	}
}

// TestHostileArtifactArchives: archive members with absolute names, "..",
// backslashes, or a wanted member that is a symlink, fail the step; nothing
// is installed and nothing outside the machine is written.
func TestHostileArtifactArchives(t *testing.T) {
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
			s := newStand(t)
			wantAll(t, s.run(nil, false), engine.StatusChanged)
			tgz := filepath.Join(s.mirrorDir, "cni/v1.5.9/cni-plugins-linux-amd64-v1.5.9.tgz")
			if err := os.MkdirAll(filepath.Dir(tgz), 0o755); err != nil {
				t.Fatal(err)
			}
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(fixture.Tar(tc.entries))
			zw.Close()
			os.WriteFile(tgz, gz.Bytes(), 0o644)
			sum := sha256.Sum256(gz.Bytes())
			os.WriteFile(tgz+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(tgz)+"\n"), 0o644)
			before := manifest(t, filepath.Join(s.machine(), "opt/cni/bin"))

			reg := engine.NewRegistry()
			steps.Register(reg, steps.Options{Fetch: fetch.New("t", fetch.WithRetries(1, time.Millisecond)), Cache: mustCache(t)})
			src := fmt.Sprintf("apiVersion: rootfsctl/v1\nkind: Plan\nname: t\nsteps:\n  cni:\n    type: download-cni\n    with: {machineDir: %s, arch: amd64, version: 1.5.9, baseURL: %s/cni}\n", s.machine(), s.mirror)
			p, err := engine.Parse("t.yaml", []byte(src), engine.LoadOptions{Registry: reg, Host: host})
			if err != nil {
				t.Fatal(err)
			}
			g, _ := engine.NewGraph(p)
			rep, _ := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
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

// TestPreflightWarnsAboutMissingBindSources: a bind source missing on the
// host is a warning (the machine would not start), not an error.
func TestPreflightWarnsAboutMissingBindSources(t *testing.T) {
	reg := engine.NewRegistry()
	steps.Register(reg, steps.Options{Cache: mustCache(t)})
	dir := t.TempDir()
	src := fmt.Sprintf("apiVersion: rootfsctl/v1\nkind: Plan\nname: t\nsteps:\n  ws:\n    type: ensure-workspace\n    with: {machineDir: %s/m/kube1, image: \"oci:%s/layout\", nspawnConfig: %s/k.nspawn, serviceOverride: %s/o.conf, bindReadOnly: [%s], hostDevices: [/dev/nonexistent-device]}\n", dir, dir, dir, dir, dir)
	p, err := engine.Parse("t.yaml", []byte(src), engine.LoadOptions{Registry: reg, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := engine.NewGraph(p)
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

// TestURLTemplates: whole-URL templates with named placeholders resolve
// to the mirror, and the checksums are found next to them in the upstream
// formats (runc's one file for all architectures beside the binary).
func TestURLTemplates(t *testing.T) {
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
	reg := engine.NewRegistry()
	steps.Register(reg, steps.Options{Fetch: fetch.New("t", fetch.WithRetries(1, time.Millisecond)), Cache: mustCache(t)})
	src := fmt.Sprintf(`apiVersion: rootfsctl/v1
kind: Plan
name: t
steps:
  kube:
    type: download-kube
    with:
      machineDir: %[1]s
      arch: amd64
      version: 1.33.1
      installDir: opt/tpl/bin
      url: "%[2]s/kube/v{version}/bin/{os}/{arch}/{binary}"
      crictl: {url: "%[2]s/cri-tools/v{version}/crictl-v{version}-{os}-{arch}.tar.gz"}
  cri:
    type: download-cri
    with:
      machineDir: %[1]s
      arch: amd64
      installDir: opt/tpl/bin
      containerd: {url: "%[2]s/containerd/v{version}/containerd-{version}-{os}-{arch}.tar.gz"}
      runc: {url: "%[2]s/runc/v{version}/runc.{arch}"}
  cni:
    type: download-cni
    with: {machineDir: %[1]s, arch: amd64, installDir: opt/tpl/cni, url: "%[2]s/cni/v{version}/cni-plugins-{os}-{arch}-v{version}.tgz"}
`, s.machine(), s.mirror)
	p, err := engine.Parse("t.yaml", []byte(src), engine.LoadOptions{Registry: reg, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := engine.NewGraph(p)
	moved := strings.NewReplacer("opt/tpl/bin", "usr/local/bin", "opt/tpl/cni", "opt/cni/bin")
	files := []string{"opt/tpl/bin/kubelet", "opt/tpl/bin/crictl", "opt/tpl/bin/containerd", "opt/tpl/bin/runc", "opt/tpl/cni/loopback"}
	before := map[string]string{}
	for _, f := range files {
		before[f] = readFile(t, filepath.Join(s.machine(), moved.Replace(f)))
	}
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, rep, engine.StatusChanged)
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
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
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
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
	var unsigned atomic.Int32
	s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("token") != "s3cret" {
			unsigned.Add(1)
			http.Error(w, "unsigned", http.StatusForbidden)
			return true
		}
		return false
	})
	reg := engine.NewRegistry()
	steps.Register(reg, steps.Options{Fetch: fetch.New("t", fetch.WithRetries(1, time.Millisecond)), Cache: mustCache(t)})
	src := fmt.Sprintf(`apiVersion: rootfsctl/v1
kind: Plan
name: t
steps:
  kube:
    type: download-kube
    with:
      machineDir: %[1]s
      arch: amd64
      version: 1.33.1
      installDir: opt/signed/bin
      baseURL: "%[2]s/kube?token=s3cret"
      crictl: {baseURL: "%[2]s/cri-tools?token=s3cret"}
  cri:
    type: download-cri
    with:
      machineDir: %[1]s
      arch: amd64
      installDir: opt/signed/bin
      containerd: {url: "%[2]s/containerd/v{version}/containerd-{version}-{os}-{arch}.tar.gz?token=s3cret"}
      runc: {url: "%[2]s/runc/v{version}/runc.{arch}?token=s3cret"}
  cni:
    type: download-cni
    with: {machineDir: %[1]s, arch: amd64, installDir: opt/signed/cni, baseURL: "%[2]s/cni?token=s3cret#frag"}
`, s.machine(), s.mirror)
	p, err := engine.Parse("t.yaml", []byte(src), engine.LoadOptions{Registry: reg, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := engine.NewGraph(p)
	rep, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	wantAll(t, rep, engine.StatusChanged)
	if n := unsigned.Load(); n != 0 {
		t.Errorf("%d requests lost the token", n)
	}
	for _, f := range []string{"opt/signed/bin/kubelet", "opt/signed/bin/crictl", "opt/signed/bin/runc", "opt/signed/cni/loopback"} {
		if _, err := os.Stat(filepath.Join(s.machine(), f)); err != nil {
			t.Errorf("%s was not installed: %v", f, err)
		}
	}
}

// TestPlatformVariantInTheIndex: an index whose arm64 entry names a variant
// (linux/arm64/v8, as Docker Hub's do) is chosen for a plan asking for
// linux/arm64, and the next apply finds the machine up to date.
func TestPlatformVariantInTheIndex(t *testing.T) {
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

// TestHugeInstalledFileIsNotRead: the machine is untrusted; an installed
// binary replaced by a 1 TiB sparse file is "modified" at once, by its
// size, without being read (hashing it would take most of an hour).
func TestHugeInstalledFileIsNotRead(t *testing.T) {
	s := newStand(t)
	wantAll(t, s.run(nil, false), engine.StatusChanged)
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

// TestStalledLayerIsGivenUp: a registry that stops sending in the middle
// of a layer blob is given up on after the fetch client's idle timeout,
// as an artifact download is, instead of holding the run until the step's
// timeout (or for ever without one).
func TestStalledLayerIsGivenUp(t *testing.T) {
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
