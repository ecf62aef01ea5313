package oci_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/internal/oci"
	"github.com/rootfsctl/rootfsctl/internal/retry"
	"github.com/rootfsctl/rootfsctl/internal/unpack"
)

// faulty is an in-process registry whose answers a test may take over.
type faulty struct {
	host  string
	mu    sync.Mutex
	fault func(w http.ResponseWriter, r *http.Request) bool
}

func newRegistry(t *testing.T) *faulty {
	f := &faulty{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		fault := f.fault
		f.mu.Unlock()
		if fault != nil && fault(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.host = strings.TrimPrefix(srv.URL, "http://")
	return f
}

func (f *faulty) setFault(fault func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

// push stores img as repo:v1 and returns its reference.
func (f *faulty) push(t *testing.T, repo string, img v1.Image) oci.Ref {
	t.Helper()
	raw := f.host + "/" + repo + ":v1"
	ref, err := name.ParseReference(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	r, err := oci.ParseRef(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// client reaches the registry under policy p, quickly.
func client(p retry.Policy) *oci.Registry {
	return &oci.Registry{Keychain: authn.DefaultKeychain, Transport: http.DefaultTransport, UserAgent: "t", Policy: p, IdleTimeout: 10 * time.Second}
}

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// TestRegistryAttemptsDoNotMultiply: a registry answering 503 is asked as
// often as the retry policy says, not that many times go-containerregistry's
// own retries, and the error says the attempts are used up, so the step
// that asked does not ask again.
func TestRegistryAttemptsDoNotMultiply(t *testing.T) {
	t.Parallel()
	f := newRegistry(t)
	ref := f.push(t, "node", fixture.NodeImage("amd64"))
	var manifests atomic.Int32
	f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		manifests.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	})
	p := retry.Policy{Attempts: 3, Delay: time.Millisecond, MaxDelay: time.Millisecond}
	_, err := client(retry.Policy{Attempts: 1}).Resolve(retry.WithPolicy(context.Background(), p), ref, amd64)
	if err == nil || !retry.IsExhausted(err) {
		t.Fatalf("Resolve(): %v, want an exhausted error", err)
	}
	if n := manifests.Load(); n != 3 {
		t.Errorf("Resolve(): %d manifest requests, want the policy's 3", n)
	}
	if got := oci.Describe(err, time.Second); got != "registry answered 503 Service Unavailable" {
		t.Errorf("Describe(): %q", got)
	}

	manifests.Store(0)
	f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") {
			manifests.Add(1)
		}
		return false
	})
	if _, err := client(p).Resolve(context.Background(), ref, v1.Platform{OS: "linux", Architecture: "s390x"}); err == nil || retry.IsExhausted(err) {
		t.Errorf("Resolve() of a platform the image lacks: %v, want a plain error, asked once", err)
	}
	if n := manifests.Load(); n != 1 {
		t.Errorf("a platform the image lacks: %d manifest requests, want 1", n)
	}
}

// drain consumes a layer as the unpack must: to its end, with its tar
// stream written to spool when there is one.
func drain(_ context.Context, _ oci.Layer, blob io.Reader, spool io.Writer) error {
	if spool == nil {
		_, err := io.Copy(io.Discard, blob)
		return err
	}
	tr, err := unpack.Inflate(blob)
	if err != nil {
		return err
	}
	defer tr.Close()
	_, err = io.Copy(spool, tr)
	return err
}

// TestLayersArriveInOrder: the layers reach the unpacker in order, whether
// the later ones are fetched beside it (a spare slot) or before it (none);
// afterwards every layer is in the cache, and a second unpack asks the
// registry for no blob.
func TestLayersArriveInOrder(t *testing.T) {
	t.Parallel()
	for _, slots := range []int{0, 4} {
		f := newRegistry(t)
		var layers []v1.Layer
		for _, body := range []string{"one", "two", "three"} {
			layers = append(layers, fixture.Layer([]fixture.Entry{{Name: "etc/" + body, Body: body}}))
		}
		ref := f.push(t, "layers", fixture.Image("amd64", layers...))
		c := cache.New(t.TempDir())
		ctx := context.Background()
		if slots > 0 {
			ctx = budget.With(ctx, budget.New(slots))
		}
		reg := client(retry.Policy{Attempts: 1})
		for round := range 2 {
			var blobs atomic.Int32
			f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
					blobs.Add(1)
				}
				return false
			})
			img, err := reg.Resolve(ctx, ref, amd64)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			err = img.Unpack(ctx, c, func(ctx context.Context, l oci.Layer, blob io.Reader, spool io.Writer) error {
				got = append(got, l.Name)
				if round == 1 && spool != nil {
					t.Errorf("slots %d: %s: the second unpack inflated the layer again", slots, l.Name)
				}
				return drain(ctx, l, blob, spool)
			})
			if err != nil || strings.Join(got, ",") != "layer 1/3,layer 2/3,layer 3/3" {
				t.Errorf("slots %d, round %d: Unpack(): %v, %v; want the three layers in order", slots, round, got, err)
			}
			if round == 1 && blobs.Load() > 1 { // the config blob, perhaps
				t.Errorf("slots %d: the second unpack fetched %d blobs, want every layer from the cache", slots, blobs.Load())
			}
		}
	}
}

// TestFailedFetchStopsTheUnpack: a later layer the registry will not
// serve ends the unpack with an error naming that layer.
func TestFailedFetchStopsTheUnpack(t *testing.T) {
	t.Parallel()
	f := newRegistry(t)
	bad := fixture.Layer([]fixture.Entry{{Name: "etc/bad", Body: "bad"}})
	ref := f.push(t, "bad", fixture.Image("amd64", fixture.Layer([]fixture.Entry{{Name: "etc/ok", Body: "ok"}}), bad))
	d, _ := bad.Digest()
	f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, d.String()) {
			http.NotFound(w, r)
			return true
		}
		return false
	})
	img, err := client(retry.Policy{Attempts: 1}).Resolve(context.Background(), ref, amd64)
	if err != nil {
		t.Fatal(err)
	}
	err = img.Unpack(context.Background(), cache.New(t.TempDir()), drain)
	if err == nil || !strings.Contains(err.Error(), "layer 2/2 (sha256:") {
		t.Errorf("Unpack(): %v, want an error naming layer 2/2", err)
	}
	var pe interface{ Temporary() bool }
	if errors.As(err, &pe) && pe.Temporary() {
		t.Errorf("Unpack(): %v is temporary; a 404 is not", err)
	}
}

// TestCacheKeepsTheTarStream: the cache keeps each layer's tar stream
// under its diff ID, whichever part inflated it (the unpack for the first
// layer, the fetch-ahead for the others), so a second unpack inflates
// nothing and is handed plain tar streams that match the diff IDs.
func TestCacheKeepsTheTarStream(t *testing.T) {
	t.Parallel()
	f := newRegistry(t)
	var layers []v1.Layer
	for i := range 8 {
		layers = append(layers, fixture.Layer([]fixture.Entry{{Name: fmt.Sprintf("etc/f%d", i), Body: strings.Repeat("x", i*1000)}}))
	}
	ref := f.push(t, "spool", fixture.Image("amd64", layers...))
	c := cache.New(t.TempDir())
	ctx := budget.With(context.Background(), budget.New(4))
	img, err := client(retry.Policy{Attempts: 1}).Resolve(ctx, ref, amd64)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Unpack(ctx, c, drain); err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		diff, _ := l.DiffID()
		rc, _, err := c.Open(diff.Hex)
		if err != nil {
			t.Fatalf("layer %d: no cache entry for its diff ID: %v", i+1, err)
		}
		want, _ := l.Uncompressed()
		a, _ := io.ReadAll(rc)
		b, _ := io.ReadAll(want)
		if err := rc.Close(); err != nil || !bytes.Equal(a, b) {
			t.Errorf("layer %d: cached stream of %d bytes (%v), want its %d-byte tar", i+1, len(a), err, len(b))
		}
	}
	var plain atomic.Int32
	err = img.Unpack(ctx, c, func(ctx context.Context, l oci.Layer, blob io.Reader, spool io.Writer) error {
		br := bufio.NewReader(blob)
		if _, err := tar.NewReader(br).Next(); err == nil && spool == nil {
			plain.Add(1)
		}
		_, err := io.Copy(io.Discard, br)
		return err
	})
	if err != nil || plain.Load() != int32(len(layers)) {
		t.Errorf("second unpack: %d of %d layers handed as plain tar streams (%v)", plain.Load(), len(layers), err)
	}
}

// TestWrongDiffIDIsRefused: a layer whose content does not match the diff
// ID in the image's config is refused (as container runtimes refuse it),
// whether the unpack or the fetch-ahead inflates it, and the cache keeps
// nothing under the false diff ID.
func TestWrongDiffIDIsRefused(t *testing.T) {
	t.Parallel()
	for _, bad := range []int{0, 2} {
		f := newRegistry(t)
		var layers []v1.Layer
		for i := range 3 {
			layers = append(layers, fixture.Layer([]fixture.Entry{{Name: fmt.Sprintf("etc/f%d", i), Body: "x"}}))
		}
		img := fixture.Image("amd64", layers...)
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.DeepCopy()
		lie := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
		cfg.RootFS.DiffIDs[bad] = lie
		img, err = mutate.ConfigFile(img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ref := f.push(t, "liar", img)
		c := cache.New(t.TempDir())
		ctx := budget.With(context.Background(), budget.New(4))
		got, err := client(retry.Policy{Attempts: 1}).Resolve(ctx, ref, amd64)
		if err != nil {
			t.Fatal(err)
		}
		err = got.Unpack(ctx, c, drain)
		if err == nil || !strings.Contains(err.Error(), "does not match the diff ID") || !strings.Contains(err.Error(), fmt.Sprintf("layer %d/3", bad+1)) {
			t.Errorf("layer %d lies: Unpack(): %v, want a diff ID mismatch naming it", bad+1, err)
		}
		if c.Has(lie.Hex) {
			t.Errorf("layer %d lies: the cache stored its stream under the false diff ID", bad+1)
		}
	}
}

// TestDamagedTarStreamIsFetchedAgain: a cached tar stream that no longer
// matches its diff ID fails the unpack that reads it, is removed, and the
// next unpack fetches the layer again.
func TestDamagedTarStreamIsFetchedAgain(t *testing.T) {
	t.Parallel()
	f := newRegistry(t)
	l := fixture.Layer([]fixture.Entry{{Name: "etc/a", Body: strings.Repeat("a", 100000)}})
	ref := f.push(t, "damaged", fixture.Image("amd64", l))
	dir := t.TempDir()
	c := cache.New(dir)
	ctx := context.Background()
	img, err := client(retry.Policy{Attempts: 1}).Resolve(ctx, ref, amd64)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Unpack(ctx, c, drain); err != nil {
		t.Fatal(err)
	}
	diff, _ := l.DiffID()
	p := filepath.Join(dir, "sha256", diff.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	err = img.Unpack(ctx, c, drain)
	if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), "removed it") {
		t.Errorf("Unpack() of a damaged stream: %v, want ErrCorrupt saying it was removed", err)
	}
	if err := img.Unpack(ctx, c, drain); err != nil {
		t.Errorf("Unpack() after the damaged stream was removed: %v", err)
	}
	if !c.Has(diff.Hex) {
		t.Error("the layer's stream is not cached again")
	}
}
