package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/cache"
)

// Layer is one layer of an image.
type Layer struct {
	Name   string // "layer 2/3", for messages and progress
	Digest string // hex SHA-256 of its blob
	Size   int64  // of its blob
	l      v1.Layer
}

func (im *Image) layers() ([]Layer, error) {
	ls, err := im.image.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
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
	}
	return out, nil
}

// Unpack hands the image's layers, in order, to unpack, which reads each
// blob to its end or fails. A layer in the cache is read from there,
// verified as it is read; otherwise it is streamed from the registry and
// written to the cache as unpack reads it: one pass hashes, inflates and
// extracts, with no temporary copy.
//
// While one layer is unpacked, the following ones are fetched into the
// cache, on a spare slot of the budget in ctx; without one, before the
// first is unpacked. The first error stops both.
func (im *Image) Unpack(ctx context.Context, c *cache.Cache, unpack func(ctx context.Context, l Layer, blob io.Reader) error) error {
	layers, err := im.layers()
	if err != nil {
		return err
	}
	// cached[i] is closed once layer i (i >= 1) is in the cache.
	cached := make([]chan struct{}, len(layers))
	for i := range cached {
		cached[i] = make(chan struct{})
	}
	// Part 0 fetches, part 1 unpacks: run in the caller one after the
	// other, the unpacking never waits for a fetch that has not started.
	return budget.Each(ctx, 2, func(ctx context.Context, part int) error {
		if part == 0 {
			return im.fetchAhead(ctx, c, layers, cached)
		}
		for i, l := range layers {
			if i > 0 {
				select {
				case <-cached[i]:
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
			if err := im.unpackLayer(ctx, c, l, unpack); err != nil {
				return fmt.Errorf("unpack %s (%s): %w", l.Name, Short("sha256:"+l.Digest), err)
			}
		}
		return nil
	})
}

// fetchAhead puts every layer but the first in the cache, in order.
func (im *Image) fetchAhead(ctx context.Context, c *cache.Cache, layers []Layer, cached []chan struct{}) error {
	for i := 1; i < len(layers); i++ {
		if err := im.cacheLayer(ctx, c, layers[i]); err != nil {
			return fmt.Errorf("fetch %s (%s): %w", layers[i].Name, Short("sha256:"+layers[i].Digest), err)
		}
		close(cached[i])
	}
	return nil
}

// cacheLayer downloads a layer blob into the cache unless it is there.
// A transfer that breaks off is attempted again, under the retry policy.
func (im *Image) cacheLayer(ctx context.Context, c *cache.Cache, l Layer) error {
	return im.reg.try(ctx, func(ctx context.Context) error {
		if c.Has(l.Digest) {
			return nil
		}
		rc, err := im.open(l)
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

// unpackLayer hands one layer to unpack, from the cache or the registry.
func (im *Image) unpackLayer(ctx context.Context, c *cache.Cache, l Layer, unpack func(ctx context.Context, l Layer, blob io.Reader) error) error {
	// An open entry can be read to its end even if a prune removes its
	// name meanwhile; one removed before the open is pulled instead.
	if rc, _, err := c.Open(l.Digest); err == nil {
		err = unpack(ctx, l, rc)
		// Close verifies what the unpack did not read: a damaged entry is
		// the cause of the failure (and is gone now, so a retry pulls it).
		if cerr := rc.Close(); errors.Is(cerr, cache.ErrCorrupt) && !errors.Is(err, cache.ErrCorrupt) {
			return fmt.Errorf("cached layer: %w; removed it, a retry pulls it again", cerr)
		}
		return err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var rc io.ReadCloser
	err := im.reg.try(ctx, func(context.Context) (err error) {
		rc, err = im.open(l)
		return err
	})
	if err != nil {
		return err
	}
	return pull(c, l, rc, func(blob io.Reader) error { return unpack(ctx, l, blob) })
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
// sending mid-blob is given up on.
func (im *Image) open(l Layer) (io.ReadCloser, error) {
	rc, err := l.l.Compressed()
	if err != nil {
		return nil, err
	}
	return newIdleReader(rc, im.reg.IdleTimeout), nil
}
