// Package cache is rootfsctl's content-addressed download cache: artifacts
// and image blobs stored by their SHA-256, so a second machine on the same
// host downloads nothing again.
//
// Entries are written to a temporary file and renamed into place only after
// their digest matched, so concurrent runs can share a cache safely (two
// writers of one entry write the same bytes). Readers verify the digest
// again: at the end of the entry, or on Close when they stopped early (as
// a reader does when the damage makes its consumer fail); a damaged entry
// is reported and removed, never used again.
// The cache never decides what is trusted: callers give the digest they
// expect, from a pin, a published checksum or an image manifest.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
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
	return &verifyingReader{f: f, fi: fi, h: sha256.New(), want: digest, path: c.path(digest)}, fi.Size(), nil
}

// OpenUnverified returns the entry's file for a caller that checks the
// digest of what it read itself (and calls Remove on a mismatch): one hash
// instead of two.
func (c *Cache) OpenUnverified(digest string) (*os.File, error) {
	f, _, err := c.openEntry(digest)
	return f, err
}

// Pin keeps an entry from being pruned while a run uses it. It is a
// shared flock on the entry's file, which Prune's exclusive one respects:
// the kernel drops it if the run dies.
type Pin struct{ f *os.File }

// Pin pins the entry for digest; fs.ErrNotExist when there is none (or it
// was removed while being pinned).
func (c *Cache) Pin(digest string) (*Pin, error) {
	f, fi, err := c.openEntry(digest)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("pin cache entry %s: %w", digest, err)
	}
	// A prune may have removed it between the open and the lock.
	if now, err := os.Lstat(c.path(digest)); err != nil || !os.SameFile(fi, now) {
		f.Close()
		return nil, fmt.Errorf("pin cache entry %s: %w", digest, fs.ErrNotExist)
	}
	return &Pin{f: f}, nil
}

// Release lets the entry be pruned again.
func (p *Pin) Release() { _ = p.f.Close() } // closing drops the flock

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

// Entry is an entry being written.
type Entry struct {
	root *os.Root // the cache directory; the entry's to close
	f    *atomicfile.File
}

// openRoot opens the cache directory for writing through it.
func (c *Cache) openRoot() (*os.Root, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	return os.OpenRoot(c.dir)
}

// Create starts writing a new entry. Its temporary file is locked until it
// is stored or discarded, so CleanTemp in another run leaves it alone.
func (c *Cache) Create() (*Entry, error) {
	root, err := c.openRoot()
	if err != nil {
		return nil, err
	}
	f, err := atomicfile.CreateTemp(root, "tmp", "entry-")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("create cache entry: %w", err)
	}
	return &Entry{root: root, f: f}, nil
}

func (e *Entry) Write(p []byte) (int, error) { return e.f.Write(p) }

// Truncate and Seek let a download restart from the beginning.
func (e *Entry) Truncate(n int64) error                    { return e.f.Truncate(n) }
func (e *Entry) Seek(off int64, whence int) (int64, error) { return e.f.Seek(off, whence) }

// Digest is the hex SHA-256 of what was written so far.
func (e *Entry) Digest() string { return e.f.Digest() }

// MismatchError says an entry's content is not what was expected.
type MismatchError struct{ Got, Want string }

func (e *MismatchError) Error() string { return fmt.Sprintf("got %s, want %s", e.Got, e.Want) }

// Commit stores the entry under want if its content has that digest, and
// discards it otherwise (returning a *MismatchError). The file is renamed
// while still locked, and closed only then.
func (e *Entry) Commit(want string) error {
	if err := e.store(want); err != nil {
		return err
	}
	err := e.f.Close()
	e.root.Close()
	if err != nil {
		return fmt.Errorf("close cache entry: %w", err)
	}
	return nil
}

// CommitPinned is Commit that leaves the stored entry pinned: the flock the
// file was written under becomes the pin's, so no prune can slip in
// between storing and pinning.
func (e *Entry) CommitPinned(want string) (*Pin, error) {
	if err := e.store(want); err != nil {
		return nil, err
	}
	e.root.Close()
	f := e.f.Detach()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("pin cache entry %s: %w", want, err)
	}
	return &Pin{f: f}, nil
}

// store checks the digest and renames the file into place, still locked.
// Entries need no fsync: they are verified whenever they are read.
func (e *Entry) store(want string) error {
	got := e.Digest()
	if got != want {
		e.Abort()
		return &MismatchError{Got: got, Want: want}
	}
	dest := path.Join("sha256", want)
	if fi, err := e.root.Lstat(dest); err == nil && fi.IsDir() {
		// Not an entry: nothing rootfsctl made. Out of the way.
		_ = e.root.RemoveAll(dest) // the rename below says if it did not go
	}
	if err := e.f.RenameTo(dest); err != nil {
		e.Abort()
		return fmt.Errorf("store cache entry: %w", err)
	}
	return nil
}

// Abort discards the entry.
func (e *Entry) Abort() {
	e.f.Abort() // best effort: CleanTemp removes what is left
	_ = e.root.Close()
}

// putSmall stores a small document at name (inside the cache directory)
// through a locked temporary file.
func (c *Cache) putSmall(name string, doc []byte) error {
	root, err := c.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := atomicfile.CreateTemp(root, "tmp", "doc-")
	if err != nil {
		return err
	}
	if _, err := f.Write(doc); err != nil {
		f.Abort()
		return err
	}
	if err := f.RenameTo(name); err != nil {
		f.Abort()
		return err
	}
	return f.Close() // after the rename: the lock covers the whole write
}

// Sum returns a remembered published checksum for key (a checksum URL and
// file name): released artifacts do not change, so the checksum document
// need not be fetched again.
func (c *Cache) Sum(key string) (string, bool) {
	b, err := readSmall(filepath.Join(c.dir, "sums", keyName(key)), 1<<10)
	if err != nil {
		return "", false
	}
	s := strings.TrimSpace(string(b))
	if len(s) != 64 {
		return "", false
	}
	return s, true
}

// ForgetSum drops a remembered checksum. Best effort: a missing one is
// fine.
func (c *Cache) ForgetSum(key string) {
	_ = os.Remove(filepath.Join(c.dir, "sums", keyName(key)))
}

// PutSum remembers a published checksum.
func (c *Cache) PutSum(key, sum string) error {
	return c.putSmall(path.Join("sums", keyName(key)), []byte(sum+"\n"))
}

func keyName(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// CleanTemp removes temporary files that no running process is writing:
// what a killed run left behind. Best effort.
func (c *Cache) CleanTemp() {
	if c.checkDirs() != nil {
		return // refused: Prune and Create say why
	}
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		return // no cache yet: nothing to clean
	}
	defer root.Close()
	des, err := os.ReadDir(filepath.Join(c.dir, "tmp"))
	if err != nil {
		return
	}
	for _, d := range des {
		atomicfile.RemoveUnheld(root, path.Join("tmp", d.Name()))
	}
}

// Index returns a small document remembered under key (for example the
// list of an archive's members); the entries it names are checked by the
// caller.
func (c *Cache) Index(key string) ([]byte, bool) {
	b, err := readSmall(filepath.Join(c.dir, "sums", "index-"+keyName(key)), maxIndex)
	return b, err == nil
}

// maxIndex bounds a remembered index document (an archive's member list).
const maxIndex = 1 << 20

// errTooLarge says a small document is larger than any rootfsctl writes.
var errTooLarge = errors.New("larger than any document the cache writes")

// readSmall reads a regular file of at most limit bytes, without following
// a symlink.
func readSmall(p string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w", p, errTooLarge)
	}
	return b, nil
}

// PutIndex remembers a small document under key.
func (c *Cache) PutIndex(key string, doc []byte) error {
	return c.putSmall(path.Join("sums", "index-"+keyName(key)), doc)
}

// Usage is the cache's size.
type Usage struct {
	Entries int
	Bytes   int64
}

var errPinned = errors.New("pinned by a live run")

// removeUnpinned removes an entry unless a live run pins it: it takes the
// exclusive flock a pin's shared one excludes, and removes while holding it.
func removeUnpinned(root *os.Root, e entryInfo) error {
	if e.dir {
		return root.RemoveAll(e.name)
	}
	f, err := root.OpenFile(e.name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return root.Remove(e.name) // a symlink or a vanished entry: not pinnable
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return errPinned
	}
	return root.Remove(e.name)
}

// Usage adds up the entries.
func (c *Cache) Usage() (Usage, error) {
	var u Usage
	entries, err := c.entries()
	for _, e := range entries {
		if !e.dir {
			u.Entries++
			u.Bytes += e.size
		}
	}
	return u, err
}

type entryInfo struct {
	name string // inside the cache directory
	size int64
	used time.Time
	dir  bool // not an entry at all: in the way of one
}

func (c *Cache) entries() ([]entryInfo, error) {
	if err := c.checkDirs(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(filepath.Join(c.dir, "sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // never written to
	}
	if err != nil {
		return nil, err
	}
	var out []entryInfo
	for _, d := range des {
		fi, err := d.Info()
		if err != nil {
			continue // removed meanwhile by a concurrent prune
		}
		out = append(out, entryInfo{name: path.Join("sha256", d.Name()), size: fi.Size(), used: fi.ModTime(), dir: fi.IsDir()})
	}
	return out, nil
}

// Prune removes the least recently used entries until the cache holds at
// most maxBytes, and the temporary files of runs that were killed (never
// those of a live run, however long it has been writing). maxBytes 0
// empties the cache.
//
// It stops, with what it removed so far and ctx's error, when ctx ends: a
// partly pruned cache is a valid cache.
func (c *Cache) Prune(ctx context.Context, maxBytes int64) (removed Usage, err error) {
	c.CleanTemp()
	entries, err := c.entries()
	if err != nil {
		return removed, err
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		return removed, err
	}
	defer root.Close()
	sort.Slice(entries, func(i, j int) bool { return entries[i].used.Before(entries[j].used) })
	for _, e := range entries {
		if total <= maxBytes && !e.dir {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		// Through the cache's root, never a path join: nothing outside it
		// can be removed, whatever is planted inside.
		if err := removeUnpinned(root, e); errors.Is(err, errPinned) {
			continue // a live run is about to install it
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("prune %s: %w", e.name, err)
		}
		total -= e.size
		removed.Entries++
		removed.Bytes += e.size
	}
	if maxBytes == 0 {
		sums, _ := os.ReadDir(filepath.Join(c.dir, "sums"))
		for _, s := range sums {
			_ = root.Remove(path.Join("sums", s.Name())) // best effort
		}
	}
	return removed, nil
}
