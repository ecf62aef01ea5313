package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// tarPieces returns a layer's tar stream in pieces that each end on a
// header boundary: one per entry, then each of the two zero blocks that
// end an archive.
func tarPieces(entries []fixture.Entry) [][]byte {
	var pieces [][]byte
	for _, e := range entries {
		b := fixture.Tar([]fixture.Entry{e})
		pieces = append(pieces, b[:len(b)-1024]) // without its end-of-archive marker
	}
	zero := make([]byte, 512)
	return append(pieces, zero, zero)
}

// compressed is a layer blob and the offsets in it where a prefix
// decompresses to a whole number of tar pieces, nothing after.
type compressed struct {
	blob       []byte
	boundaries []int
}

// compress joins pieces as one stream (flushed after each piece, so that a
// cut there decompresses to exactly the pieces before it), or, with
// separate, as one gzip member or zstd frame per piece (so that a cut
// there is a complete, valid compressed stream).
func compress(t *testing.T, kind string, separate bool, pieces [][]byte) compressed {
	t.Helper()
	var b bytes.Buffer
	var c compressed
	w := newCompressor(t, kind, &b)
	for _, p := range pieces {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if separate {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = newCompressor(t, kind, &b)
		} else if f, ok := w.(interface{ Flush() error }); ok {
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		c.boundaries = append(c.boundaries, b.Len())
	}
	if !separate {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	c.blob = b.Bytes()
	return c
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func newCompressor(t *testing.T, kind string, w io.Writer) io.WriteCloser {
	t.Helper()
	switch kind {
	case "gzip":
		return gzip.NewWriter(w)
	case "zstd":
		zw, err := zstd.NewWriter(w)
		if err != nil {
			t.Fatal(err)
		}
		return zw
	}
	return nopCloser{w}
}

// TestTruncatedLayersFail: a layer cut short fails, wherever the cut
// falls: inside an entry or its padding, exactly on a tar header boundary (with the
// compressed stream cut there too, or ending properly there, as a gzip
// member or zstd frame may), between the two zero blocks that end the
// archive, or in the compressed stream's own trailer after the whole tar.
// The whole layer unpacks.
func TestTruncatedLayersFail(t *testing.T) {
	t.Parallel()
	pieces := tarPieces([]fixture.Entry{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/os-release", Body: "ID=test\n"},
		{Name: "usr/lib/big", Body: string(bytes.Repeat([]byte("0123456789abcdef"), 4096))},
		{Name: "etc/last", Body: "the last entry\n"},
	})
	for _, tc := range []struct {
		kind     string
		separate bool
	}{{"plain", false}, {"gzip", false}, {"gzip", true}, {"zstd", false}, {"zstd", true}} {
		name := tc.kind
		if tc.separate {
			name += " in parts"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := compress(t, tc.kind, tc.separate, pieces)
			full := len(c.blob)
			if err := layerFrom(t, c.blob); err != nil {
				t.Fatalf("Layer() of the whole %s layer: %v", name, err)
			}
			cuts := map[int]bool{full - 1: true, c.boundaries[0] + 100: true, c.boundaries[1] + 3: true}
			if tc.kind == "plain" {
				cuts[c.boundaries[1]-10] = true // in the padding after an entry's data
			} else {
				cuts[full-4] = true // in gzip's size or zstd's checksum
			}
			for _, b := range c.boundaries {
				cuts[b] = true
			}
			delete(cuts, full) // the last boundary of separate parts is the whole layer
			for cut := range cuts {
				err := layerFrom(t, c.blob[:cut])
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("Layer() of %s cut at %d of %d: %v, want an unexpected EOF", name, cut, full, err)
				}
			}
		})
	}
}

func layerFrom(t *testing.T, blob []byte) error {
	t.Helper()
	dir := t.TempDir()
	u, done := openUnpacker(t, dir)
	defer done()
	if err := u.Layer(context.Background(), bytes.NewReader(blob)); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/last")); err != nil {
		return fmt.Errorf("accepted without its last entry: %w", err)
	}
	return nil
}
