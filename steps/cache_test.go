package steps_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// TestDamagedLargeLayerIsDroppedFromCache: a cached layer (its tar
// stream) damaged near its start fails the unpack long before the
// verifying reader reaches the end (the tar error comes first). The cache must still find the
// damage, drop the entry, and let the next attempt pull the layer again,
// so provisioning succeeds instead of failing on every apply.
func TestDamagedLargeLayerIsDroppedFromCache(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	// 16 MiB that do not compress: far more than the unpack reads ahead.
	r := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	layer := fixture.Layer([]fixture.Entry{{Name: "var/big.bin", Body: string(big)}})
	img := fixture.Image("amd64", fixture.Layer(fixture.RootFS("amd64")), layer)
	s.push("rootfsctl/big:v1", fixture.Index(map[string]v1.Image{"amd64": img}))
	image := map[string]string{"image": s.registry + "/rootfsctl/big:v1"}

	shared := mustCache(t)
	rep, err := s.apply(shared, zerolog.Nop(), image)
	if err != nil || rep.Failed() {
		t.Fatalf("first machine: %v %v", err, statusOf(rep))
	}
	digest, err := layer.DiffID() // the cache keeps the tar stream
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(shared.Dir(), "sha256", digest.Hex)
	f, err := os.OpenFile(entry, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("the layer is not in the cache: %v", err)
	}
	// Offset 12 is in the first tar header: its checksum fails at once
	// (damage inside a file's content would only show at the end).
	if _, err := f.WriteAt([]byte("damaged by a bad disk"), 12); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// Up to two applies: the damage may fail the first (it must be dropped
	// then), never the second.
	for attempt := 1; ; attempt++ {
		extra := map[string]string{"image": image["image"], "machine": "second"}
		rep, err = s.apply(shared, zerolog.Nop(), extra)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Failed() {
			break
		}
		if attempt == 2 {
			t.Fatalf("second machine still fails after the damage was seen: %v", statusOf(rep))
		}
	}
	wantAll(t, rep, engine.StatusChanged)
	if got := readFile(t, filepath.Join(s.out, "machines/second/var/big.bin")); got != string(big) {
		t.Error("var/big.bin of the second machine differs from the image's")
	}
	ef, err := os.Open(entry)
	if err != nil {
		t.Fatalf("the layer was not cached again: %v", err)
	}
	defer ef.Close()
	h := sha256.New()
	io.Copy(h, ef)
	if hex.EncodeToString(h.Sum(nil)) != digest.Hex {
		t.Error("the cache entry is still damaged")
	}
}

// TestSecondMachineDownloadsNothing: with a shared cache, provisioning a
// second machine fetches no artifact and no blob again (manifests are
// resolved; nothing else).
func TestSecondMachineDownloadsNothing(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	shared := mustCache(t)
	run := func(machine string) *engine.Report {
		rep, err := s.apply(shared, zerolog.Nop(), map[string]string{"machine": machine})
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
	t.Parallel()
	s := newStand(t)
	c := mustCache(t)
	apply := func() *engine.Report {
		rep, err := s.apply(c, zerolog.Nop(), nil)
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

// TestWrongPublishedChecksumIsNotRemembered: a checksum document that is
// wrong once (a mirror mid-sync) fails that apply, but is not kept: the
// next apply on the host fetches it again and succeeds. Only a checksum
// that an artifact verified against is remembered.
func TestWrongPublishedChecksumIsNotRemembered(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	shared := mustCache(t)
	var served atomic.Int32
	s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		// Wrong for the first request, the prefetch's: a mismatch cannot
		// succeed, so the step fails with it and does not ask again.
		if strings.HasSuffix(r.URL.Path, "/kubelet.sha256") && served.Add(1) <= 1 {
			w.Write([]byte(strings.Repeat("ab", 32) + "\n"))
			return true
		}
		return false
	})
	rep, err := s.apply(shared, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := statusOf(rep)["kube"]; !strings.Contains(st, "verify sha256") {
		t.Fatalf("kube with a wrong published checksum: %s, want a checksum mismatch", st)
	}
	rep, err = s.apply(shared, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() {
		t.Fatalf("apply after the mirror was fixed: %v", statusOf(rep))
	}
	// Verified now, so remembered: another machine asks for it no more.
	before := served.Load()
	rep, err = s.apply(shared, zerolog.Nop(), map[string]string{"machine": "other"})
	if err != nil || rep.Failed() {
		t.Fatalf("second machine: %v %v", err, statusOf(rep))
	}
	if n := served.Load(); n != before {
		t.Errorf("kubelet.sha256 fetched again for a second machine (%d times, then %d), want it remembered once verified", before, n)
	}
}

// TestDamagedMemberIndexIsNotTrusted: the cache's list of an archive's
// members is checked before use. A list edited to send a member elsewhere
// (etc/shadow), even with its checksum line made to match, and a list
// whose content no longer matches its checksum line (another member's
// digest) are both dropped; the archive is taken apart again and the new
// machine gets exactly the files of the first.
func TestDamagedMemberIndexIsNotTrusted(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	dir := t.TempDir()
	shared := cache.New(dir)
	run := func(machine string) {
		t.Helper()
		rep, err := s.apply(shared, zerolog.Nop(), map[string]string{"machine": machine})
		if err != nil {
			t.Fatal(err)
		}
		wantAll(t, rep, engine.StatusChanged)
	}
	installed := func(machine string) map[string]string {
		m := map[string]string{}
		for _, sub := range []string{"usr/local/bin", "opt/cni/bin", "etc"} {
			for k, v := range manifest(t, filepath.Join(s.out, "machines", machine, sub)) {
				if sub == "etc" && k != "shadow" {
					continue // hostname and the like name the machine
				}
				f := strings.Fields(v)
				m[sub+"/"+k] = strings.Join(f[:min(3, len(f))], " ") // without the time
			}
		}
		return m
	}
	tamper := func(edit func(members []map[string]string), rehash bool) {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, "sums", "index-*"))
		if len(files) == 0 {
			t.Fatal("no member index in the cache")
		}
		for _, f := range files {
			sum, doc, _ := strings.Cut(readFile(t, f), "\n")
			var members []map[string]string
			if err := json.Unmarshal([]byte(doc), &members); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			edit(members)
			b, _ := json.Marshal(members)
			if rehash {
				h := sha256.Sum256(b)
				sum = hex.EncodeToString(h[:])
			}
			if err := os.WriteFile(f, []byte(sum+"\n"+string(b)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	run("m1")
	want := installed("m1")
	tamper(func(ms []map[string]string) { ms[0]["dest"] = "etc/shadow" }, true)
	run("m2")
	tamper(func(ms []map[string]string) { ms[0]["sha256"] = ms[len(ms)-1]["sha256"] }, false)
	run("m3")
	for _, m := range []string{"m2", "m3"} {
		if d := diffManifests(want, installed(m)); len(d) > 0 {
			t.Errorf("%s differs from m1:\n%s", m, strings.Join(d, "\n"))
		}
	}
}
