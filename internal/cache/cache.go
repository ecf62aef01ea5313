// Package cache is rootfsctl's content-addressed download cache: artifacts,
// archive members, image configs and layers (blobs, or inflated tar
// streams under their diff IDs) stored by their SHA-256, with the
// published checksums of releases, so a second machine on the same host
// downloads nothing again.
//
// Entries are written under a locked temporary name (internal/atomicfile)
// and renamed into place only after their digest matched, so concurrent
// runs can share a cache safely (two writers of one entry write the same
// bytes). Readers verify the digest again: at the end of the entry, or on
// Close when they stopped early (as a reader does when the damage makes its
// consumer fail); a damaged entry is reported and removed, never used
// again. An entry a run is about to install is pinned (a shared flock) and
// Prune leaves it alone; a pin on an entry the run has just stored reads it
// without a second hash.
//
// The cache never decides what is trusted: callers give the digest they
// expect, from a pin, a published checksum or an image manifest. It must
// not follow a symlink planted in its directory, and Prune removes only
// through the cache's own directory handle.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Cache is a cache directory. It is created (mode 0700) on the first write,
// so merely configuring a cache touches nothing.
type Cache struct {
	dir     string
	once    sync.Once
	initErr error
}

// New returns the cache in dir.
func New(dir string) *Cache { return &Cache{dir: dir} }

func (c *Cache) init() error {
	c.once.Do(func() {
		for _, sub := range subdirs {
			if err := os.MkdirAll(filepath.Join(c.dir, sub), 0o700); err != nil {
				c.initErr = fmt.Errorf("create cache %s: %w", c.dir, err)
				return
			}
		}
		c.initErr = c.checkDirs()
	})
	return c.initErr
}

var subdirs = []string{"sha256", "tmp", "sums"}

// checkDirs refuses a cache whose subdirectories are not real
// directories: a symlinked sha256/ or sums/ would make a prune remove, and
// info count, files outside the cache.
func (c *Cache) checkDirs() error {
	for _, sub := range subdirs {
		fi, err := os.Lstat(filepath.Join(c.dir, sub))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("cache %s: %w", c.dir, err)
		case !fi.IsDir():
			return fmt.Errorf("cache %s: %s is not a directory (a symlink?); refusing to use the cache", c.dir, sub)
		}
	}
	return nil
}

// Dir is the cache directory.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) path(digest string) string { return filepath.Join(c.dir, "sha256", digest) }

// ErrCorrupt is returned when an entry's content no longer matches its digest.
var ErrCorrupt = errors.New("cache entry does not match its digest")

// Has reports whether an entry for digest (hex SHA-256) exists. Only a
// regular file is an entry: anything else under its name (a symlink the
// cache never writes) is removed.
func (c *Cache) Has(digest string) bool {
	fi, err := os.Lstat(c.path(digest))
	if err != nil {
		return false
	}
	if !fi.Mode().IsRegular() {
		c.Remove(digest)
		return false
	}
	return true
}

// openEntry opens an entry's file without following a symlink, checks that
// it is a regular file, and refreshes its time through the descriptor
// (never a symlink's target), which Prune uses to keep recently used
// entries.
func (c *Cache) openEntry(digest string) (*os.File, os.FileInfo, error) {
	p := c.path(digest)
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		c.Remove(digest) // a symlink is not an entry
		return nil, nil, fmt.Errorf("open cache entry %s: %w", digest, fs.ErrNotExist)
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		c.Remove(digest)
		return nil, nil, fmt.Errorf("open cache entry %s: not a regular file: %w", digest, fs.ErrNotExist)
	}
	now := unix.NsecToTimeval(time.Now().UnixNano())
	_ = unix.Futimes(int(f.Fd()), []unix.Timeval{now, now}) // best effort: only affects which entries prune keeps
	return f, fi, nil
}

// Open returns a reader of the entry that verifies the digest. The read
// that reaches the end returns ErrCorrupt if the content does not match.
// A reader closed before a verified end (its consumer failed, perhaps on
// the very damage, or was cancelled), or after a read error, hashes the
// rest of the entry on Close, and Close returns ErrCorrupt if it does not
// match. Either way a damaged entry is removed, so every reader of every
// entry gets it downloaded again next time, not used again.
func (c *Cache) Open(digest string) (io.ReadCloser, int64, error) {
	f, fi, err := c.openEntry(digest)
	if err != nil {
		return nil, 0, err
	}
	// It is read whole, start to end: have the kernel read it ahead.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_WILLNEED) // a hint only
	return &verifyingReader{f: f, fi: fi, h: sha256.New(), want: digest, path: c.path(digest)}, fi.Size(), nil
}

// OpenUnverified returns the entry's file for a caller that checks the
// digest of what it read itself (and calls Remove on a mismatch): one hash
// instead of two.
func (c *Cache) OpenUnverified(digest string) (*os.File, error) {
	f, _, err := c.openEntry(digest)
	return f, err
}

// Remove drops an entry found damaged.
func (c *Cache) Remove(digest string) {
	_ = os.Remove(c.path(digest)) // best effort: a missing entry is fine
}

type verifyingReader struct {
	mu      sync.Mutex // Read may run on a read-ahead goroutine while Close is called
	f       *os.File
	fi      os.FileInfo
	h       hash.Hash
	want    string
	path    string
	checked bool // the whole entry was hashed
	corrupt bool
	closed  bool
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		r.checked = true
		if hex.EncodeToString(r.h.Sum(nil)) != r.want {
			r.drop()
			return n, fmt.Errorf("%w: %s", ErrCorrupt, r.want)
		}
	}
	return n, err
}

// Close verifies what was not read, unless the end was reached.
func (r *verifyingReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	defer r.f.Close()
	if !r.checked {
		r.checked = true
		if _, err := io.Copy(r.h, r.f); err != nil {
			// Unreadable is damaged as well.
			r.drop()
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, r.want, err)
		}
		if hex.EncodeToString(r.h.Sum(nil)) != r.want {
			r.drop()
		}
	}
	if r.corrupt {
		return fmt.Errorf("%w: %s", ErrCorrupt, r.want)
	}
	return nil
}

// drop removes the damaged entry, unless another run has replaced it
// meanwhile with a new copy (then that one is not ours to judge).
func (r *verifyingReader) drop() {
	r.corrupt = true
	if fi, err := os.Lstat(r.path); err == nil && os.SameFile(fi, r.fi) {
		_ = os.Remove(r.path) // best effort: a damaged entry must not be used again
	}
}
