package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/trace"
	"github.com/rootfsctl/rootfsctl/internal/unpack"
)

// Layer is one layer of an image.
type Layer struct {
	Name   string // "layer 2/3", for messages and progress
	Digest string // hex SHA-256 of its blob
	// DiffID is the hex SHA-256 of its tar stream (the blob inflated), as
	// the image's config gives it; "" when the config gives none.
	DiffID string
	Size   int64 // of what the unpack reads: the blob, or the cached tar stream
	// Stream says that what the unpack is handed is the layer's tar
	// stream (cached, or a layer stored uncompressed), to be read as a tar
	// and never taken for a compressed blob, whatever its first bytes.
	Stream bool
	l      v1.Layer
}

// spooled says whether the cache keeps the layer's tar stream (under its
// diff ID) rather than its blob: a second machine then extracts without
// inflating anything, and later layers are inflated ahead, beside the
// unpack of an earlier one. That costs writing the stream and reading it
// back, hashed both times: worth it for gzip (inflated at about 280 MB/s
// on one core here), not for zstd (several times faster; measured slower
// spooled), nor for a layer stored uncompressed (its own tar stream), nor
// without a diff ID to check the stream against.
func (l Layer) spooled() bool {
	if l.DiffID == "" || l.DiffID == l.Digest {
		return false
	}
	mt, err := l.l.MediaType()
	return err == nil && (mt == types.OCILayer || mt == types.DockerLayer)
}

func (im *Image) layers(ctx context.Context, c *cache.Cache) ([]Layer, error) {
	ls, err := im.image.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	diffIDs, err := im.diffIDs(ctx, c)
	if err != nil {
		return nil, err
	}
	if len(diffIDs) != len(ls) {
		return nil, fmt.Errorf("the image's config lists %d diff IDs for its %d layers", len(diffIDs), len(ls))
	}
	out := make([]Layer, len(ls))
	for i, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		if d.Algorithm != "sha256" {
			return nil, fmt.Errorf("layer %d: unsupported digest algorithm %s", i+1, d.Algorithm)
		}
		size, _ := l.Size() // only for progress
		out[i] = Layer{Name: fmt.Sprintf("layer %d/%d", i+1, len(ls)), Digest: d.Hex, Size: size, l: l}
		if mt, err := l.MediaType(); err == nil && (mt == types.OCIUncompressedLayer || mt == types.DockerUncompressedLayer) {
			out[i].Stream = true
		}
		if diffIDs[i].Algorithm == "sha256" {
			out[i].DiffID = diffIDs[i].Hex
		}
	}
	return out, nil
}

// maxConfig bounds an image config: real ones are a few KiB.
const maxConfig = 4 << 20

// diffIDs reads the diff IDs from the image's config, which comes from the
// cache when it is there (verified against the manifest's digest for it)
// and otherwise from the registry (with the idle timeout and retries that
// layers have), and is then cached: a second machine asks the registry for
// no blob at all.
func (im *Image) diffIDs(ctx context.Context, c *cache.Cache) ([]v1.Hash, error) {
	m, err := im.image.Manifest() // fetched already; ConfigName would fetch the config
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	name := m.Config.Digest
	if m.Config.Size > maxConfig {
		return nil, fmt.Errorf("image config is larger than %d MiB (%d bytes)", maxConfig>>20, m.Config.Size)
	}
	if name.Algorithm != "sha256" {
		return nil, fmt.Errorf("image config: unsupported digest algorithm %s", name.Algorithm)
	}
	var raw []byte
	if rc, _, err := c.Open(name.Hex); err == nil {
		raw, err = io.ReadAll(io.LimitReader(rc, maxConfig))
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			raw = nil // damaged (and removed): fetched below
		}
	}
	if raw == nil {
		cl, err := partial.ConfigLayer(im.image)
		if err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
		err = im.reg.try(ctx, func(ctx context.Context) error {
			rc, err := im.open(ctx, Layer{Digest: name.Hex, Size: m.Config.Size, l: cl})
			if err != nil {
				return err
			}
			defer context.AfterFunc(ctx, func() { _ = rc.Close() })()
			defer rc.Close()
			raw, err = io.ReadAll(io.LimitReader(newDigestReader(rc, name.Hex), maxConfig+1))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("fetch image config: %w", err)
		}
		if len(raw) > maxConfig {
			return nil, fmt.Errorf("image config is larger than %d MiB", maxConfig>>20)
		}
		if e, err := c.Create(); err == nil {
			if _, err := e.Write(raw); err != nil {
				e.Abort()
			} else {
				_ = e.Commit(name.Hex) // best effort: fetched again next time
			}
		}
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	return cf.RootFS.DiffIDs, nil
}

// UnpackFunc extracts one layer from blob (compressed or not), reading it
// to its end or failing. With a spool, it also writes the layer's tar
// stream there, all of it, before it returns.
type UnpackFunc func(ctx context.Context, l Layer, blob io.Reader, spool io.Writer) error

// spoolers is how many later layers are fetched and inflated at once while
// one is extracted.
const spoolers = 2

// Unpack hands the image's layers, in order, to unpack. A layer whose tar
// stream is in the cache is read from there; otherwise its blob is (from
// the cache, or streamed from the registry), and unpack inflates it,
// writing the tar stream to the cache as it goes: one pass downloads,
// verifies, inflates and extracts, with no temporary copy. What the cache
// gets is verified twice: the blob against the layer's digest, the stream
// against its diff ID (which the image's config, verified in turn, gives);
// a layer that does not match its diff ID is refused, as container
// runtimes refuse it.
//
// While the first layer is unpacked, the following ones are fetched and
// inflated into the cache, in order, up to spoolers at a time, on a spare
// slot of the budget in ctx. Each later layer is taken by whichever gets
// to it first, the unpack or the fetch-ahead: the unpack waits only for a
// layer a running fetch has taken, never for a fetch that has no slot to
// start on (it then fetches every layer itself, as it reaches it). The
// first error stops all of it.
func (im *Image) Unpack(ctx context.Context, c *cache.Cache, unpack UnpackFunc) error {
	layers, err := im.layers(ctx, c)
	if err != nil {
		return err
	}
	a := newAhead(len(layers))
	defer a.release() // after every part has ended
	// Part 0 unpacks, part 1 fetches ahead: in the caller one after the
	// other when the budget has no spare slot, and then the fetch-ahead
	// finds every layer taken.
	return budget.Each(ctx, 2, func(ctx context.Context, part int) error {
		if part == 1 {
			return im.fetchAhead(ctx, c, layers, a)
		}
		for i, l := range layers {
			var kept *cache.Pin
			if i > 0 && !a.take(i) {
				end := trace.Span(ctx, fmt.Sprintf("wait for layer %d", i+1))
				select {
				case <-a.cached[i]:
					kept = a.kept[i]
				case <-ctx.Done():
					end()
					return context.Cause(ctx)
				}
				end()
			}
			end := trace.Span(ctx, fmt.Sprintf("extract layer %d", i+1))
			err := im.unpackLayer(ctx, c, l, kept, unpack)
			end()
			if err != nil {
				return fmt.Errorf("unpack %s (%s): %w", l.Name, Short("sha256:"+l.Digest), err)
			}
		}
		return nil
	})
}

// ahead is what the unpack and the fetch-ahead share: which later layers
// are taken (by either), and for those the fetch-ahead took, when each is
// in the cache and its tar stream if it has just inflated it.
type ahead struct {
	taken  []atomic.Bool
	cached []chan struct{} // closed once layer i is in the cache
	kept   []*cache.Pin    // set before cached[i] is closed
}

func newAhead(n int) *ahead {
	a := &ahead{taken: make([]atomic.Bool, n), cached: make([]chan struct{}, n), kept: make([]*cache.Pin, n)}
	for i := range a.cached {
		a.cached[i] = make(chan struct{})
	}
	return a
}

// take says whether the caller is the first to take layer i.
func (a *ahead) take(i int) bool { return a.taken[i].CompareAndSwap(false, true) }

func (a *ahead) release() {
	for _, p := range a.kept {
		if p != nil {
			p.Release()
		}
	}
}

// fetchAhead puts every later layer the unpack has not taken in the cache,
// in order, up to spoolers at a time.
func (im *Image) fetchAhead(ctx context.Context, c *cache.Cache, layers []Layer, a *ahead) error {
	var next atomic.Int64
	next.Store(1)
	return budget.Each(ctx, spoolers, func(ctx context.Context, w int) error {
		for i := int(next.Add(1) - 1); i < len(layers); i = int(next.Add(1) - 1) {
			if !a.take(i) {
				continue // the unpack got there first
			}
			end := trace.SpanOn(ctx, fmt.Sprintf("fetch-ahead %d", w+1), layers[i].Name,
				map[string]any{"digest": "sha256:" + layers[i].Digest, "compressedBytes": layers[i].Size})
			pin, err := im.cacheLayer(ctx, c, layers[i])
			end(nil)
			if err != nil {
				return fmt.Errorf("fetch %s (%s): %w", layers[i].Name, Short("sha256:"+layers[i].Digest), err)
			}
			a.kept[i] = pin
			close(a.cached[i])
		}
		return nil
	})
}

// cacheLayer puts a layer in the cache unless it is there: its tar stream
// (inflated here, beside the unpack of an earlier layer), or for a layer
// that is not spooled, its blob. A transfer that breaks off is attempted
// again, under the retry policy.
func (im *Image) cacheLayer(ctx context.Context, c *cache.Cache, l Layer) (*cache.Pin, error) {
	if !l.spooled() {
		return nil, im.reg.try(ctx, func(ctx context.Context) error {
			if c.Has(l.Digest) {
				return nil
			}
			rc, err := im.open(ctx, l)
			if err != nil {
				return err
			}
			// The registry's reads know only the resolving context: a
			// cancelled fetch ends its transfer by closing it.
			defer context.AfterFunc(ctx, func() { _ = rc.Close() })()
			return pull(c, l, rc, func(blob io.Reader) error {
				_, err := io.Copy(io.Discard, blob)
				return err
			})
		})
	}
	var pin *cache.Pin
	err := im.reg.try(ctx, func(ctx context.Context) (err error) {
		if c.Has(l.DiffID) {
			return nil
		}
		pin, err = im.spoolBlob(ctx, c, l, func(_ context.Context, _ Layer, blob io.Reader, spool io.Writer) error {
			return unpack.Spool(blob, spool)
		}, true)
		return err
	})
	return pin, err
}

// unpackLayer hands one layer to unpack, from the cache or the registry.
//
// kept is the layer's tar stream if the fetch-ahead has just inflated it
// and checked it against the diff ID: read as it is, not hashed again.
func (im *Image) unpackLayer(ctx context.Context, c *cache.Cache, l Layer, kept *cache.Pin, unpack UnpackFunc) error {
	if kept != nil {
		r, err := kept.Reader()
		if err != nil {
			return err
		}
		l.Size, l.Stream = r.Size(), true
		return unpack(ctx, l, r, nil)
	}
	// An open entry can be read to its end even if a prune removes its
	// name meanwhile; one removed before the open is pulled instead.
	if l.spooled() {
		if rc, size, err := c.Open(l.DiffID); err == nil {
			l.Size, l.Stream = size, true
			return readEntry(rc, unpack(ctx, l, rc, nil))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		_, err := im.spoolBlob(ctx, c, l, unpack, false)
		return err
	}
	// A blob stored uncompressed is the layer's tar stream (l.Stream).
	if rc, _, err := c.Open(l.Digest); err == nil {
		return readEntry(rc, unpack(ctx, l, rc, nil))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var rc io.ReadCloser
	err := im.reg.try(ctx, func(context.Context) (err error) {
		rc, err = im.open(ctx, l)
		return err
	})
	if err != nil {
		return err
	}
	return pull(c, l, rc, func(blob io.Reader) error { return unpack(ctx, l, blob, nil) })
}

// readEntry closes a cache entry that was read, which verifies what the
// reader did not read: a damaged entry is the cause of a failure (and is
// gone now, so a retry fetches it again).
func readEntry(rc io.ReadCloser, err error) error {
	cerr := rc.Close()
	if !errors.Is(err, cache.ErrCorrupt) {
		if !errors.Is(cerr, cache.ErrCorrupt) {
			return err
		}
		err = cerr
	}
	return fmt.Errorf("cached layer: %w; removed it, a retry fetches it again", err)
}

// pull hands a layer's blob from rc to consume, writing it to a new cache
// entry on the way, which is stored when the digest of what went through
// is the layer's. It closes rc.
func pull(c *cache.Cache, l Layer, rc io.ReadCloser, consume func(blob io.Reader) error) error {
	defer rc.Close()
	e, err := c.Create()
	if err != nil {
		return err
	}
	if err := consume(io.TeeReader(rc, e)); err != nil {
		e.Abort()
		return err
	}
	// The whole blob went through the entry: its digest is the check.
	if err := e.Commit(l.Digest); err != nil {
		return fmt.Errorf("verify layer: %w", err)
	}
	return nil
}

// open opens a layer's compressed blob (the request, for a registry's)
// with the idle timeout artifact downloads have: a registry that stops
// sending mid-blob is given up on. Nothing checks the digest here: every
// caller hashes what it reads.
func (im *Image) open(ctx context.Context, l Layer) (io.ReadCloser, error) {
	var rc io.ReadCloser
	var err error
	if im.blobs != nil && l.Digest != "" {
		rc, err = im.blobs.get(ctx, "sha256:"+l.Digest, l.Size)
	} else {
		rc, err = l.l.Compressed()
	}
	if err != nil {
		return nil, err
	}
	return newIdleReader(rc, im.reg.IdleTimeout), nil
}
