package mirror_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/internal/oci"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// registryMirror serves an in-process registry and counts the requests
// that write (PUT, POST, PATCH).
func registryMirror(t *testing.T) (*mirror.Mirror, *atomic.Int64) {
	t.Helper()
	var writes atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writes.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d, err := mirror.ParseDest("oci://" + strings.TrimPrefix(srv.URL, "http://") + "/site/mirror")
	if err != nil {
		t.Fatal(err)
	}
	return &mirror.Mirror{Dest: d, Reg: client()}, &writes
}

func client() *oci.Registry {
	return &oci.Registry{Keychain: authn.DefaultKeychain, Transport: http.DefaultTransport, UserAgent: "t", Policy: retry.Policy{Attempts: 1}}
}

func layoutMirror(t *testing.T) *mirror.Mirror {
	d, err := mirror.ParseDest("oci-layout:" + filepath.Join(t.TempDir(), "carry"))
	if err != nil {
		t.Fatal(err)
	}
	return &mirror.Mirror{Dest: d, Reg: client()}
}

func file(content string) mirror.File {
	sum := sha256.Sum256([]byte(content))
	return mirror.File{Artifact: "kubelet 1.33.1 linux/amd64", Title: "kubelet", URL: "https://dl.example/v1.33.1/kubelet",
		SumFrom: "https://dl.example/v1.33.1/kubelet.sha256", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
}

// TestFileRoundTrip: a file stored in a registry or a layout is found
// again by its name, with its checksum and upstream, and reads back whole;
// storing it again copies nothing.
func TestFileRoundTrip(t *testing.T) {
	t.Parallel()
	reg, writes := registryMirror(t)
	for _, m := range []*mirror.Mirror{reg, layoutMirror(t)} {
		t.Run(m.Dest.String()[:6], func(t *testing.T) {
			ctx := context.Background()
			f := file("#!/bin/sh\necho kubelet\n")
			n, _ := mirror.ArtifactName(f.URL)
			st, err := m.PutFile(ctx, n, f)
			if err != nil || !st.Copied {
				t.Fatalf("first PutFile: %+v %v", st, err)
			}
			before := writes.Load()
			again, err := m.PutFile(ctx, n, f)
			if err != nil || again.Copied || again.Digest != st.Digest {
				t.Errorf("second PutFile: %+v %v; want nothing copied, digest %s", again, err, st.Digest)
			}
			if w := writes.Load(); w != before {
				t.Errorf("the second PutFile made %d writing requests", w-before)
			}
			got, err := m.File(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if got.SHA256 != f.SHA256 || got.URL != f.URL || got.Title != "kubelet" || got.Size != f.Size || got.Artifact != f.Artifact {
				t.Errorf("File() = %+v", got)
			}
			rc, err := m.OpenFile(ctx, n, got)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != "#!/bin/sh\necho kubelet\n" {
				t.Errorf("OpenFile read %q", b)
			}
			if _, err := m.File(ctx, mirror.Name{Repo: n.Repo, Tag: "kubectl"}); !errors.Is(err, mirror.ErrMissing) {
				t.Errorf("a missing file: %v, want ErrMissing", err)
			}
		})
	}
}

// TestArtifactManifestIsORASShaped: what a registry holds for a file is
// an OCI 1.1 artifact manifest: an artifactType, the empty config, one
// layer titled with the file name whose digest is the upstream checksum.
func TestArtifactManifestIsORASShaped(t *testing.T) {
	t.Parallel()
	f := file("content")
	img, err := f.Image()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != mirror.ArtifactType || m.Config.MediaType != "application/vnd.oci.empty.v1+json" ||
		m.Config.Digest.Hex != "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Errorf("manifest head: %+v", m)
	}
	if len(m.Layers) != 1 || m.Layers[0].Digest.Hex != f.SHA256 || m.Layers[0].Annotations["org.opencontainers.image.title"] != "kubelet" {
		t.Errorf("layers: %+v", m.Layers)
	}
	again, _ := file("content").Image()
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same file gives manifests %s and %s", d1, d2)
	}
}

// TestTamperedArtifactIsRefused: an artifact whose layer is not the
// checksum it carries (edited in the registry) is refused by name.
func TestTamperedArtifactIsRefused(t *testing.T) {
	t.Parallel()
	m, _ := registryMirror(t)
	ctx := context.Background()
	good := file("good")
	evil := file("evil")
	n, _ := mirror.ArtifactName(good.URL)
	// A manifest claiming good's checksum over evil's layer.
	forged := evil
	img, _ := forged.Image()
	raw, _ := img.RawManifest()
	raw = bytes.Replace(raw, []byte(`"dev.rootfsctl.upstream.sha256":"`+evil.SHA256), []byte(`"dev.rootfsctl.upstream.sha256":"`+good.SHA256), 1)
	if _, err := m.Put(ctx, n, rawImage{img, raw}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.File(ctx, n); !errors.Is(err, mirror.ErrNotAnArtifact) || !strings.Contains(err.Error(), "not the checksum") {
		t.Errorf("a forged artifact: %v", err)
	}
}

// rawImage is an image with another manifest.
type rawImage struct {
	v1.Image
	raw []byte
}

func (r rawImage) RawManifest() ([]byte, error) { return r.raw, nil }
func (r rawImage) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(r.raw))
	return h, err
}

// TestImagesKeepTheirDigests: an index stored in either kind of mirror is
// resolved from it with the same digest.
func TestImagesKeepTheirDigests(t *testing.T) {
	t.Parallel()
	reg, _ := registryMirror(t)
	for _, m := range []*mirror.Mirror{reg, layoutMirror(t)} {
		idx, err := random.Index(64, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		n := mirror.Name{Repo: "r.example/team/rootfs", Tag: "1.0"}
		st, err := m.Put(context.Background(), n, idx)
		if err != nil || !st.Copied {
			t.Fatalf("%s: Put: %+v %v", m.Dest, st, err)
		}
		want, _ := idx.Digest()
		if st.Digest != want.String() {
			t.Errorf("%s: stored %s, want %s", m.Dest, st.Digest, want)
		}
		if again, err := m.Put(context.Background(), n, idx); err != nil || again.Copied {
			t.Errorf("%s: second Put: %+v %v", m.Dest, again, err)
		}
		if _, err := m.ImageRef(n); err != nil {
			t.Errorf("%s: ImageRef: %v", m.Dest, err)
		}
	}
}

// TestLayoutThatIsNotOneIsLeftAlone: a directory with files but no
// index.json is refused, and nothing is written into it.
func TestLayoutThatIsNotOneIsLeftAlone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := mirror.ParseDest("oci-layout:" + dir)
	m := &mirror.Mirror{Dest: d, Reg: client()}
	f := file("x")
	n, _ := mirror.ArtifactName(f.URL)
	if _, err := m.PutFile(context.Background(), n, f); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("PutFile into a non-layout: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory now holds %d entries", len(entries))
	}
	if _, err := m.File(context.Background(), n); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Errorf("File from a non-layout: %v", err)
	}
}
