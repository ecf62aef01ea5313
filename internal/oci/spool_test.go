package oci_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/internal/oci"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

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

// TestTamperedBlobIsRefused: a registry that serves other bytes than a
// blob's digest (one byte changed, or bytes added at the end) fails the
// unpack, whichever part reads the blob (the unpack, the fetch-ahead,
// the config read) and however the layer is cached (its tar stream for
// gzip, its blob for zstd); nothing of it is cached.
func TestTamperedBlobIsRefused(t *testing.T) {
	t.Parallel()
	for _, zstd := range []bool{false, true} {
		for _, which := range []string{"config", "layer 1", "layer 2"} {
			for _, how := range []string{"flip", "append", "recompress"} {
				if how == "recompress" && (which == "config" || zstd) {
					continue
				}
				f := newRegistry(t)
				var layers []v1.Layer
				for i := range 2 {
					l := fixture.Layer([]fixture.Entry{{Name: fmt.Sprintf("etc/f%d", i), Body: strings.Repeat("y", 5000)}})
					if zstd {
						u, _ := l.Uncompressed()
						var err error
						l, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return u, nil }, tarball.WithCompression("zstd"))
						if err != nil {
							t.Fatal(err)
						}
						b, _ := l.Compressed() // pin its bytes once
						raw, _ := io.ReadAll(b)
						l = static.NewLayer(raw, types.OCILayerZStd)
					}
					layers = append(layers, l)
				}
				img := fixture.Image("amd64", layers...)
				ref := f.push(t, "tampered", img)
				var target v1.Hash
				var body []byte
				switch which {
				case "config":
					target, _ = img.ConfigName()
					body, _ = img.RawConfigFile()
				default:
					l := layers[0]
					if which == "layer 2" {
						l = layers[1]
					}
					target, _ = l.Digest()
					rc, _ := l.Compressed()
					body, _ = io.ReadAll(rc)
				}
				switch how {
				case "flip":
					body = append([]byte(nil), body...)
					body[len(body)/2] ^= 0x20
				case "append":
					body = append(append([]byte(nil), body...), "trailing bytes"...)
				case "recompress":
					// The same tar stream (so the same diff ID), compressed
					// otherwise: only the blob's digest tells.
					l := layers[0]
					if which == "layer 2" {
						l = layers[1]
					}
					body = recompress(t, l, len(body))
				}
				c := cache.New(t.TempDir())
				ctx := budget.With(context.Background(), budget.New(4))
				reg := client(retry.Policy{Attempts: 1})
				got, err := reg.Resolve(ctx, ref, amd64) // the manifest is served as it is
				if err != nil {
					t.Fatal(err)
				}
				f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
					if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+target.String()) {
						return false
					}
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					w.Write(body)
					return true
				})
				err = got.Unpack(ctx, c, drain)
				what := fmt.Sprintf("zstd %v, %s, %s", zstd, which, how)
				if err == nil {
					t.Errorf("%s: Unpack() of tampered bytes succeeded", what)
					continue
				}
				entries, _ := os.ReadDir(filepath.Join(c.Dir(), "sha256"))
				for _, e := range entries {
					for _, l := range layers {
						d, _ := l.Digest()
						diff, _ := l.DiffID()
						if e.Name() == d.Hex && d == target || e.Name() == diff.Hex && d == target {
							t.Errorf("%s: the tampered layer was cached as %s", what, e.Name())
						}
					}
				}
			}
		}
	}
}

// recompress gzips the layer's tar stream anew, to exactly size bytes (a
// gzip comment makes up the difference), so that neither the length nor
// the diff ID, only the blob's digest, tells it from the original.
func recompress(t *testing.T, l v1.Layer, size int) []byte {
	t.Helper()
	gz := func(comment string) []byte {
		u, _ := l.Uncompressed()
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		zw.Comment = comment
		io.Copy(zw, u)
		zw.Close()
		return b.Bytes()
	}
	base := len(gz(""))
	if size-base-1 < 1 {
		t.Fatalf("the layer recompresses to %d bytes, no smaller than its %d", base, size)
	}
	b := gz(strings.Repeat("c", size-base-1))
	if len(b) != size {
		t.Fatalf("recompressed to %d bytes, want %d", len(b), size)
	}
	return b
}

// staticKeychain gives one user's credentials for every registry.
type staticKeychain struct{ user, pass string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.FromConfig(authn.AuthConfig{Username: k.user, Password: k.pass}), nil
}

// TestBlobsAreFetchedWithCredentials: a registry that wants credentials
// gets them on every request, the blobs rootfsctl fetches itself among
// them, and the image unpacks; with wrong ones it fails, saying so.
func TestBlobsAreFetchedWithCredentials(t *testing.T) {
	t.Parallel()
	f := newRegistry(t)
	ref := f.push(t, "private", fixture.Image("amd64",
		fixture.Layer([]fixture.Entry{{Name: "etc/a", Body: "a"}}),
		fixture.Layer([]fixture.Entry{{Name: "etc/b", Body: "b"}})))
	var blobs atomic.Int32
	f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == "robot" && p == "s3cret" {
			if strings.Contains(r.URL.Path, "/blobs/") {
				blobs.Add(1)
			}
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	for _, pass := range []string{"s3cret", "wrong"} {
		reg := client(retry.Policy{Attempts: 1})
		reg.Keychain = staticKeychain{"robot", pass}
		ctx := budget.With(context.Background(), budget.New(4))
		img, err := reg.Resolve(ctx, ref, amd64)
		if err == nil {
			err = img.Unpack(ctx, cache.New(t.TempDir()), drain)
		}
		switch {
		case pass == "s3cret" && err != nil:
			t.Errorf("with credentials: %v", err)
		case pass == "s3cret" && blobs.Load() < 3: // the config and two layers
			t.Errorf("with credentials: %d blob requests went through, want 3", blobs.Load())
		case pass == "wrong" && (err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") && !strings.Contains(err.Error(), "401")):
			t.Errorf("with wrong credentials: %v, want an error saying so", err)
		}
	}
}
