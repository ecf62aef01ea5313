package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"sync"

	"github.com/rootfsctl/rootfsctl/internal/cache"
)

// spoolBlob hands a layer's blob (from the cache, where an older rootfsctl
// kept blobs, or from the registry) to consume with a new cache entry to
// write its tar stream to, which is stored when the blob matched the
// layer's digest and the stream its diff ID.
//
// With keep, the stored entry is pinned and its pin returned, for the
// unpack to read from: what was just written and hashed needs no second
// hash (nor can a prune remove it meanwhile).
func (im *Image) spoolBlob(ctx context.Context, c *cache.Cache, l Layer, consume UnpackFunc, keep bool) (*cache.Pin, error) {
	var blob io.ReadCloser
	if rc, _, err := c.Open(l.Digest); err == nil {
		blob = rc
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	} else if err := im.reg.try(ctx, func(context.Context) (err error) {
		blob, err = im.open(ctx, l)
		return err
	}); err != nil {
		return nil, err
	} else {
		blob = newDigestReader(blob, l.Digest)
	}
	// The registry's reads know only the resolving context: a cancelled
	// fetch ends its transfer by closing it.
	stop := context.AfterFunc(ctx, func() { _ = blob.Close() })
	defer stop()
	sp, err := newSpool(c)
	if err != nil {
		blob.Close()
		return nil, err
	}
	err = consume(ctx, l, blob, sp)
	if err == nil {
		err = finish(blob) // the digest, of all of it
	}
	if err = readEntry(blob, err); err != nil {
		sp.abort()
		return nil, err
	}
	return sp.commit(l.DiffID, keep)
}

// spool is a cache entry that a layer's tar stream is written to, from a
// goroutine of the unpack's; it may still be writing when the unpack
// fails, so the entry is given up under the same lock.
type spool struct {
	mu   sync.Mutex
	e    *cache.Entry
	err  error
	done bool
}

func newSpool(c *cache.Cache) (*spool, error) {
	e, err := c.Create()
	if err != nil {
		return nil, err
	}
	return &spool{e: e}, nil
}

var errSpoolDone = errors.New("layer spool already closed")

func (s *spool) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return 0, errSpoolDone
	}
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.e.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

func (s *spool) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		s.e.Abort()
	}
}

// commit stores the tar stream under the layer's diff ID (pinned, with
// keep). A stream that does not match it is refused: the image is not what
// its config says.
func (s *spool) commit(diffID string, keep bool) (*cache.Pin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, errSpoolDone
	}
	s.done = true
	if s.err != nil {
		s.e.Abort()
		return nil, fmt.Errorf("cache the layer's tar stream: %w", s.err)
	}
	var pin *cache.Pin
	var err error
	if keep {
		pin, err = s.e.CommitPinned(diffID)
	} else {
		err = s.e.Commit(diffID)
	}
	var mm *cache.MismatchError
	if errors.As(err, &mm) {
		return nil, fmt.Errorf("the layer's content does not match the diff ID in the image's config (got sha256:%s, want sha256:%s)", mm.Got, mm.Want)
	}
	return pin, err
}

// digestReader checks that a blob from a registry has the layer's digest:
// the read that reaches its end fails if not.
type digestReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
}

func newDigestReader(rc io.ReadCloser, want string) *digestReader {
	return &digestReader{rc: rc, h: sha256.New(), want: want}
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.rc.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want {
			return n, fmt.Errorf("layer blob does not match its digest (got sha256:%s, want sha256:%s)", got, d.want)
		}
	}
	return n, err
}

func (d *digestReader) Close() error { return d.rc.Close() }

// finish reads what the unpack left of a blob (a decompressor stops at its
// trailer), so that its digest is checked over all of it.
func finish(blob io.Reader) error {
	_, err := io.Copy(io.Discard, blob)
	return err
}
