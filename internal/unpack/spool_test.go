package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/internal/unpack"
)

// spoolEntries is a layer of several MiB (more than the read-ahead holds),
// half of it incompressible.
func spoolEntries() []fixture.Entry {
	r := rand.New(rand.NewPCG(5, 6))
	noise := make([]byte, 3<<20)
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	return []fixture.Entry{
		{Name: "etc", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/noise", Body: string(noise)},
		{Name: "etc/text", Body: strings.Repeat("spool ", 600000)},
		{Name: "etc/last", Body: "last"},
	}
}

// slowWriter is a spool that falls behind: the extraction must not wait
// for it, nor lose a byte.
type slowWriter struct{ bytes.Buffer }

func (s *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return s.Buffer.Write(p)
}

// failingWriter fails after n bytes, and counts what it is offered after.
type failingWriter struct {
	n     int
	after atomic.Int64
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		f.after.Add(int64(len(p)))
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

// TestLayerSpooledWritesTheTarStream: whatever the compression, the spool
// gets exactly the layer's tar stream, all of it by the time the layer is
// applied, even when it is slower than the extraction; a spool that fails
// does not fail the layer, and is not written to again.
func TestLayerSpooledWritesTheTarStream(t *testing.T) {
	t.Parallel()
	stream := fixture.Tar(spoolEntries())
	for _, kind := range []string{"gzip", "zstd", "tar"} {
		blob := compress(t, kind, false, [][]byte{stream}).blob
		apply := func(spool io.Writer) error {
			root, err := os.OpenRoot(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			u := unpack.New(root, unpack.Options{})
			defer u.Close()
			return u.LayerSpooled(context.Background(), bytes.NewReader(blob), spool)
		}
		var fast bytes.Buffer
		var slow slowWriter
		for name, w := range map[string]*bytes.Buffer{"fast": &fast, "slow": &slow.Buffer} {
			spool := io.Writer(w)
			if name == "slow" {
				spool = &slow
			}
			if err := apply(spool); err != nil {
				t.Fatalf("%s, %s spool: %v", kind, name, err)
			}
			if !bytes.Equal(w.Bytes(), stream) {
				t.Errorf("%s, %s spool: got %d bytes, want the %d-byte tar stream", kind, name, w.Len(), len(stream))
			}
		}
		fw := &failingWriter{n: 1 << 20}
		if err := apply(fw); err != nil {
			t.Errorf("%s: a failing spool failed the layer: %v", kind, err)
		}
		if fw.after.Load() > int64(1<<20) { // the one write that failed
			t.Errorf("%s: %d bytes offered to the spool after it failed", kind, fw.after.Load())
		}
	}
}

// TestInflateMatchesTheStream: Inflate hands on the tar stream of a gzip,
// zstd or plain blob, and a damaged blob is an error, not a short stream.
func TestInflateMatchesTheStream(t *testing.T) {
	t.Parallel()
	stream := fixture.Tar(spoolEntries())
	for _, kind := range []string{"gzip", "zstd", "tar"} {
		blob := compress(t, kind, false, [][]byte{stream}).blob
		rc, err := unpack.Inflate(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, stream) {
			t.Errorf("%s: Inflate gave %d bytes (%v), want %d", kind, len(got), err, len(stream))
		}
		if kind == "tar" {
			continue
		}
		cut := blob[:len(blob)*2/3]
		rc, err = unpack.Inflate(bytes.NewReader(cut))
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if err == nil {
			t.Errorf("%s: a blob cut at two thirds inflated without an error", kind)
		}
	}
}

// TestClosedInflateStopsItsReaders: a read from an inflated stream that was
// closed (an unpack that failed) returns an error, never (0, nil), which a
// reader would retry for ever; and closing returns at once while the blob
// is still arriving.
func TestClosedInflateStopsItsReaders(t *testing.T) {
	t.Parallel()
	stream := fixture.Tar(spoolEntries())
	pr, pw := io.Pipe()
	go func() {
		pw.Write(stream[:1<<20]) // then nothing more until the pipe is closed
	}()
	rc, err := unpack.Inflate(pr)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := rc.Read(buf); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	pw.CloseWithError(fmt.Errorf("gone"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := rc.Read(buf)
		if err != nil {
			break
		}
		if n == 0 || time.Now().After(deadline) {
			t.Fatalf("read after Close: (%d, nil), want an error", n)
		}
	}
}
