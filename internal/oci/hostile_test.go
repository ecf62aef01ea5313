package oci_test

// Hostile images and the layer cache: what the cache keeps is read as
// what it is, and nothing an image says makes rootfsctl keep or read more
// than it extracts.

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/internal/oci"
	"github.com/rootfsctl/rootfsctl/internal/retry"
	"github.com/rootfsctl/rootfsctl/internal/unpack"
)

// applyLayer applies a layer as the workspace step does: a tar stream as
// a tar, a blob by its compression.
func applyLayer(ctx context.Context, u *unpack.Unpacker, l oci.Layer, blob io.Reader, spool io.Writer) error {
	if l.Stream {
		return u.Tar(ctx, blob)
	}
	return u.LayerSpooled(ctx, blob, spool)
}

// rawLayer is a gzip layer with a given compressed blob and tar stream.
type rawLayer struct{ gz, tarb []byte }

func hsh(b []byte) v1.Hash                  { return v1.Hash{Algorithm: "sha256", Hex: sha(b)} }
func (l rawLayer) Digest() (v1.Hash, error) { return hsh(l.gz), nil }
func (l rawLayer) DiffID() (v1.Hash, error) { return hsh(l.tarb), nil }
func (l rawLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l rawLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tarb)), nil
}
func (l rawLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l rawLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

func gzipOf(b []byte) []byte {
	var o bytes.Buffer
	w := gzip.NewWriter(&o)
	w.Write(b)
	w.Close()
	return o.Bytes()
}

// polyglot returns a tar stream T that, read as a tar, holds one harmless
// file, but that is also a complete gzip member whose content is evil.
func polyglot(evil []byte) []byte {
	const end = 2048 // header, one content block, two zero blocks
	t := make([]byte, end)
	// gzip header: magic, deflate, FEXTRA, mtime, xfl, os, XLEN
	copy(t, []byte{0x1f, 0x8b, 0x08, 0x04, 'A', 'B', 'C', 'D', 0x00, 0xff})
	binary.LittleEndian.PutUint16(t[10:], uint16(end-12))
	// tar V7 header fields
	copy(t[100:], "0000644\x00")
	copy(t[108:], "0000000\x00")
	copy(t[116:], "0000000\x00")
	copy(t[124:], fmt.Sprintf("%011o\x00", 6))
	copy(t[136:], "00000000000\x00")
	t[156] = '0'
	copy(t[148:], "        ")
	sum := 0
	for _, c := range t[:512] {
		sum += int(c)
	}
	copy(t[148:], fmt.Sprintf("%06o\x00 ", sum))
	copy(t[512:], "hello\n")
	var d bytes.Buffer
	fw, _ := flate.NewWriter(&d, flate.BestCompression)
	fw.Write(evil)
	fw.Close()
	t = append(t, d.Bytes()...)
	t = binary.LittleEndian.AppendUint32(t, crc32.ChecksumIEEE(evil))
	t = binary.LittleEndian.AppendUint32(t, uint32(len(evil)))
	return t
}

func listTar(t *testing.T, b []byte) []string {
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		names = append(names, fmt.Sprintf("%q", h.Name))
	}
}

type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// pushRaw pushes layers, a raw config and a manifest built from them.
// cfgDigest overrides the config descriptor's digest ("" = real).
func pushRaw(t *testing.T, f *faulty, repo string, layers []v1.Layer, cfg []byte, cfgDigest string) oci.Ref {
	t.Helper()
	r, err := name.NewRepository(f.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	var descs []map[string]any
	for _, l := range layers {
		if err := remote.WriteLayer(r, l); err != nil {
			t.Fatal(err)
		}
		d, _ := l.Digest()
		sz, _ := l.Size()
		mt, _ := l.MediaType()
		descs = append(descs, map[string]any{"mediaType": mt, "digest": d.String(), "size": sz})
	}
	if err := remote.WriteLayer(r, static.NewLayer(cfg, types.OCIConfigJSON)); err != nil {
		t.Fatal(err)
	}
	if cfgDigest == "" {
		cfgDigest = "sha256:" + sha(cfg)
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1,
		"config": map[string]any{"mediaType": types.OCIConfigJSON, "digest": cfgDigest, "size": len(cfg)}, "layers": descs})
	ref, _ := name.ParseReference(f.host + "/" + repo + ":v1")
	if err := remote.Put(ref, rawManifest{m, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
	o, err := oci.ParseRef(f.host+"/"+repo+":v1", false)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func config(diffIDs []string) []byte {
	b, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	return b
}

func diffs(ls ...v1.Layer) []string {
	var out []string
	for _, l := range ls {
		d, _ := l.DiffID()
		out = append(out, d.String())
	}
	return out
}

func unpackTree(t *testing.T, ref oci.Ref, c *cache.Cache) (string, error) {
	ctx := budget.With(context.Background(), budget.New(4))
	im, err := client(retry.Policy{Attempts: 1}).Resolve(ctx, ref, amd64)
	if err != nil {
		return "", err
	}
	dir := t.TempDir()
	root, _ := os.OpenRoot(dir)
	u := unpack.New(root, unpack.Options{Privileged: true})
	defer u.Close()
	err = im.Unpack(ctx, c, func(ctx context.Context, l oci.Layer, blob io.Reader, spool io.Writer) error {
		return applyLayer(ctx, u, l, blob, spool)
	})
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, _ error) error {
		if !fi.IsDir() {
			b, _ := os.ReadFile(p)
			r, _ := filepath.Rel(dir, p)
			files = append(files, r+"="+string(b[:min(len(b), 10)]))
		}
		return nil
	})
	sort.Strings(files)
	return strings.Join(files, ","), err
}

// TestCachedStreamIsReadAsTar: a layer whose tar stream (the one its diff
// ID names) is also a complete gzip member, with other content, extracts
// as the tar every other reader sees, whether the unpack inflates it
// (layer 1 on a cold cache) or reads it from the cache (the fetch-ahead's
// stream, or any layer on a warm cache): a stream is never sniffed again.
func TestCachedStreamIsReadAsTar(t *testing.T) {
	t.Parallel()
	evil := fixture.Tar([]fixture.Entry{{Name: "etc/evil", Body: "pwned\n"}})
	T := polyglot(evil)
	want := listTar(t, T)
	if len(want) != 1 {
		t.Fatalf("the polyglot holds %v, want one entry", want)
	}
	bad := rawLayer{gz: gzipOf(T), tarb: T}
	base := fixture.Layer([]fixture.Entry{{Name: "etc/base", Body: "base\n"}})
	for _, layers := range [][]v1.Layer{{bad}, {base, bad}} {
		f := newRegistry(t)
		ref := f.push(t, "poly", fixture.Image("amd64", layers...))
		c := cache.New(t.TempDir())
		for round := range 2 {
			tree, err := unpackTree(t, ref, c)
			what := fmt.Sprintf("layer %d of %d, round %d", len(layers), len(layers), round)
			if err != nil || strings.Contains(tree, "evil") || !strings.Contains(tree, "ABCD") {
				t.Errorf("%s: extracted %q (%v), want the one entry a tar reader sees", what, tree, err)
			}
		}
	}
}

// TestDoubleGzipIsRefusedAlike: a gzip layer whose tar stream is itself
// gzip is no layer: refused as the first layer and as a later one, on a
// cold cache and a warm one; its inner tar is never extracted.
func TestDoubleGzipIsRefusedAlike(t *testing.T) {
	t.Parallel()
	inner := gzipOf(fixture.Tar([]fixture.Entry{{Name: "etc/inner", Body: "i"}}))
	dbl := rawLayer{gz: gzipOf(inner), tarb: inner}
	base := fixture.Layer([]fixture.Entry{{Name: "etc/base", Body: "b"}})
	for _, ls := range [][]v1.Layer{{dbl}, {base, dbl}} {
		f := newRegistry(t)
		ref := f.push(t, "dbl", fixture.Image("amd64", ls...))
		c := cache.New(t.TempDir())
		for round := range 2 {
			tree, err := unpackTree(t, ref, c)
			if err == nil || strings.Contains(tree, "inner") {
				t.Errorf("%d layers, round %d: %q, %v; want it refused", len(ls), round, tree, err)
			}
		}
	}
}

// TestTrailingDataIsBounded: a layer whose tar is followed by 16 MiB of
// zeros (a blob of a few KiB) is refused, whether the unpack or the
// fetch-ahead inflates it, and the cache keeps none of it.
func TestTrailingDataIsBounded(t *testing.T) {
	t.Parallel()
	T := append(fixture.Tar([]fixture.Entry{{Name: "etc/x", Body: "x"}}), make([]byte, 16<<20)...)
	bomb := rawLayer{gz: gzipOf(T), tarb: T}
	base := fixture.Layer([]fixture.Entry{{Name: "etc/base", Body: "b"}})
	for _, ls := range [][]v1.Layer{{bomb}, {base, bomb}} {
		f := newRegistry(t)
		ref := f.push(t, "bomb", fixture.Image("amd64", ls...))
		c := cache.New(t.TempDir())
		_, err := unpackTree(t, ref, c)
		if err == nil || !strings.Contains(err.Error(), "after its tar's end-of-archive marker") {
			t.Errorf("%d layers: %v, want the trailing data refused", len(ls), err)
		}
		var total int64
		for _, dir := range []string{"sha256", "tmp"} {
			ents, _ := os.ReadDir(filepath.Join(c.Dir(), dir))
			for _, e := range ents {
				if fi, err := e.Info(); err == nil {
					total += fi.Size()
				}
			}
		}
		if total > 1<<20 {
			t.Errorf("%d layers: the cache holds %d KiB after the refusal", len(ls), total>>10)
		}
	}
}

// TestImageConfigShapes: an image whose config lists fewer or more diff
// IDs than it has layers, or swaps them, or is larger than 4 MiB (said by
// its manifest), is refused with a message saying so; duplicate and empty
// layers, and a diff ID the cache cannot key (sha512), unpack alike on a
// cold and a warm cache.
func TestImageConfigShapes(t *testing.T) {
	t.Parallel()
	A := fixture.Layer([]fixture.Entry{{Name: "etc/a", Body: "a"}})
	B := fixture.Layer([]fixture.Entry{{Name: "etc/b", Body: "b"}, {Name: "etc/.wh.a"}})
	E := fixture.Layer(nil)
	huge := config(diffs(A, B))
	huge = append(huge[:len(huge)-1], []byte(`,"pad":"`+strings.Repeat("x", 5<<20)+`"}`)...)
	for _, tc := range []struct {
		name   string
		layers []v1.Layer
		cfg    []byte
		err    string // "" when it must unpack
	}{
		{"ok", []v1.Layer{A, B}, config(diffs(A, B)), ""},
		{"fewer diff IDs", []v1.Layer{A, B}, config(diffs(A)), "lists 1 diff IDs for its 2 layers"},
		{"more diff IDs", []v1.Layer{A, B}, config(diffs(A, B, E)), "lists 3 diff IDs for its 2 layers"},
		{"sha512 diff ID", []v1.Layer{A, B}, config([]string{diffs(A)[0], "sha512:" + strings.Repeat("ab", 64)}), ""},
		{"swapped diff IDs", []v1.Layer{A, B}, config(diffs(B, A)), "does not match the diff ID"},
		{"A,B,A", []v1.Layer{A, B, A}, config(diffs(A, B, A)), ""},
		{"A,A,B,B", []v1.Layer{A, A, B, B}, config(diffs(A, A, B, B)), ""},
		{"empty layers", []v1.Layer{E, A, E, E}, config(diffs(E, A, E, E)), ""},
		{"5 MiB config", []v1.Layer{A, B}, huge, "image config is larger than 4 MiB"},
	} {
		f := newRegistry(t)
		ref := pushRaw(t, f, "img", tc.layers, tc.cfg, "")
		c := cache.New(t.TempDir())
		cold, err1 := unpackTree(t, ref, c)
		warm, err2 := unpackTree(t, ref, c)
		for _, err := range []error{err1, err2} {
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
		}
		if tc.err == "" && cold != warm { // a failed unpack's partial tree depends on timing
			t.Errorf("%s: cold %q, warm %q", tc.name, cold, warm)
		}
	}
}
