package oci_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	return unpack.Spool(blob, spool)
}

// TestLayersArriveInOrder: the layers reach the unpacker in order, whether
// the later ones are fetched beside it (a spare slot) or by the unpack as it
// reaches them (none);
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

// TestUnpackNeverWaitsForAFetchWithoutASlot: with no spare slot in the
// budget, the fetch-ahead cannot run beside the unpack; the unpack then
// starts on the first layer at once and fetches each later layer itself
// as it reaches it, instead of waiting for all of them to be fetched
// first.
func TestUnpackNeverWaitsForAFetchWithoutASlot(t *testing.T) {
	t.Parallel()
	f := newRegistry(t)
	var layers []v1.Layer
	for _, body := range []string{"one", "two", "three"} {
		layers = append(layers, fixture.Layer([]fixture.Entry{{Name: "etc/" + body, Body: body}}))
	}
	ref := f.push(t, "noslot", fixture.Image("amd64", layers...))
	digests := map[string]string{}
	for i, l := range layers {
		d, _ := l.Digest()
		digests[d.String()] = fmt.Sprintf("fetch layer %d", i+1)
	}
	var mu sync.Mutex
	var events []string
	note := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if e, ok := digests[path.Base(r.URL.Path)]; ok && r.Method == http.MethodGet {
			note(e)
		}
		return false
	})
	b := budget.New(1)
	ctx := budget.With(context.Background(), b)
	if err := b.Acquire(ctx); err != nil { // the step's own slot: none is spare
		t.Fatal(err)
	}
	defer b.Release()
	img, err := client(retry.Policy{Attempts: 1}).Resolve(ctx, ref, amd64)
	if err != nil {
		t.Fatal(err)
	}
	err = img.Unpack(ctx, cache.New(t.TempDir()), func(ctx context.Context, l oci.Layer, blob io.Reader, spool io.Writer) error {
		note("unpack " + l.Name)
		return drain(ctx, l, blob, spool)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "fetch layer 1,unpack layer 1/3,fetch layer 2,unpack layer 2/3,fetch layer 3,unpack layer 3/3"
	if got := strings.Join(events, ","); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
}
