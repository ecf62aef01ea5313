package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// crashStand is a registry and a throttled mirror holding a larger image
// and artifacts than the unit tests use, so an apply lasts long enough to
// be interrupted in every phase: pull, unpack, each download, each install,
// the config writes.
type crashStand struct {
	registry, mirror, resolv string
}

func newCrashStand(t *testing.T) *crashStand {
	t.Helper()
	rs := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(rs.Close)
	mirrorDir := t.TempDir()
	if err := fixture.WriteMirror(mirrorDir, fixture.DefaultMirror); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 20<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	kubelet := filepath.Join(mirrorDir, "kube/v1.33.1/bin/linux/amd64/kubelet")
	if err := os.WriteFile(kubelet, big, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(big)
	if err := os.WriteFile(kubelet+".sha256", []byte(hex.EncodeToString(sum[:])), 0o644); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(mirrorDir))
	ms := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(&throttled{ResponseWriter: w, bytesPerSec: 40 << 20}, r)
	}))
	t.Cleanup(ms.Close)

	entries := fixture.RootFS("amd64")
	for i := 0; i < 2000; i++ {
		body := make([]byte, 4096+rng.IntN(16384))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		entries = append(entries, fixture.Entry{Name: fmt.Sprintf("usr/share/data/%02d/file-%04d", i%50, i), Body: string(body)})
	}
	img := fixture.Image("amd64", fixture.Layer(entries), fixture.Layer(fixture.RootFSUpdate()))
	host := strings.TrimPrefix(rs.URL, "http://")
	ref, _ := name.ParseReference(host + "/rootfsctl/demo-node:v1")
	if err := remote.WriteIndex(ref, fixture.Index(map[string]v1.Image{"amd64": img})); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &crashStand{registry: host, mirror: ms.URL, resolv: resolv}
}

// throttled caps a response's rate, so downloads take measurable time.
type throttled struct {
	http.ResponseWriter
	bytesPerSec int
}

func (w *throttled) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := min(len(p), 256<<10)
		k, err := w.ResponseWriter.Write(p[:chunk])
		n += k
		if err != nil {
			return n, err
		}
		time.Sleep(time.Duration(chunk) * time.Second / time.Duration(w.bytesPerSec))
		p = p[chunk:]
	}
	return n, nil
}

func (s *crashStand) apply(bin, out, cache string) *exec.Cmd {
	return exec.Command(bin, s.args(out, cache)...)
}

// args is the command line of a cold apply of the demo plan from the stand.
func (s *crashStand) args(out, cache string) []string {
	return []string{"apply", "--log-level", "error", "--cache-dir", cache, "--cache-max-size", "10GiB", "../../plans/demo.yaml",
		"--var", "registry=" + s.registry, "--var", "mirror=" + s.mirror, "--var", "out=" + out,
		"--var", "resolvConf=" + s.resolv, "--var", "arch=amd64"}
}

// tree describes every entry under dir (type, mode, owner-independent
// size and digest), without times. Files whose content legitimately
// differs between runs (records with timestamps) keep only their type.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case strings.Contains(rel, "var/lib/rootfsctl/"):
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(h[:])
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

func isLeftover(rel string) bool {
	return strings.Contains(rel, ".rootfsctl-tmp-") || strings.Contains(rel, ".rootfsctl-staging-") || strings.Contains(rel, ".rootfsctl-old-")
}

// TestKill9AtRandomMoments kills apply with SIGKILL at 30 random moments of
// a cold run. After each kill no file at a final path has a wrong digest;
// a normal apply then repairs the machine to exactly the tree of an
// uninterrupted run and leaves no temporary or staging files behind.
func TestKill9AtRandomMoments(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the crash harness runs 31 cold applies")
	}
	bin, s, ref, refDur := referenceRun(t)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d", seed)
	const rounds = 30
	delays := make([]time.Duration, rounds)
	for i := range delays {
		delays[i] = time.Duration(rng.Int64N(int64(refDur * 11 / 10)))
	}
	// Rounds are independent (own machine and cache directories): two at
	// a time halve the wall time, and a loaded machine only moves where
	// in the run the random moment falls.
	for w := range 2 {
		t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
			t.Parallel()
			for i := w; i < rounds; i += 2 {
				killAndRepair(t, bin, s, ref, i, delays[i])
			}
		})
	}
}

// killAndRepair kills a cold apply after delay, checks that no final path
// holds wrong content, and that the next apply repairs the machine to ref.
func killAndRepair(t *testing.T, bin string, s *crashStand, ref map[string]string, i int, delay time.Duration) {
	t.Helper()
	out, cache := t.TempDir(), t.TempDir()
	cmd := s.apply(bin, out, cache)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(syscall.SIGKILL) // it may have finished: that is a moment too
	_ = cmd.Wait()

	for rel, desc := range tree(t, out) {
		if isLeftover(rel) || strings.HasPrefix(desc, "-") && ref[rel] == "" {
			continue
		}
		if want, ok := ref[rel]; ok && want != desc && strings.HasPrefix(desc, "-") {
			t.Errorf("round %d (killed at %s): %s has the wrong content after the kill: %s, want %s", i, delay, rel, desc, want)
		}
	}
	if msg, err := s.apply(bin, out, cache).CombinedOutput(); err != nil {
		t.Fatalf("round %d (killed at %s): the repairing apply failed: %v\n%s", i, delay, err, msg)
	}
	got := tree(t, out)
	var diffs []string
	for rel, want := range ref {
		if got[rel] != want {
			diffs = append(diffs, fmt.Sprintf("%s: %q, want %q", rel, got[rel], want))
		}
	}
	for rel := range got {
		if _, ok := ref[rel]; !ok {
			diffs = append(diffs, "unexpected "+rel)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "tmp"))
	for _, e := range entries {
		diffs = append(diffs, "cache temporary file left: "+e.Name())
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("round %d (killed at %s): after the repair the tree differs from an uninterrupted run:\n%s", i, delay, strings.Join(diffs, "\n"))
	}
}

// buildBinary builds rootfsctl once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rootfsctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// referenceRun builds the binary and the stand, and applies once without
// interruption: the tree every interrupted run must end up with.
func referenceRun(t *testing.T) (bin string, s *crashStand, ref map[string]string, took time.Duration) {
	t.Helper()
	bin = buildBinary(t)
	s = newCrashStand(t)
	out := t.TempDir()
	start := time.Now()
	if msg, err := s.apply(bin, out, t.TempDir()).CombinedOutput(); err != nil {
		t.Fatalf("reference apply: %v\n%s", err, msg)
	}
	took = time.Since(start)
	ref = tree(t, out)
	t.Logf("reference cold apply: %s, %d entries", took.Round(time.Millisecond), len(ref))
	return bin, s, ref, took
}
