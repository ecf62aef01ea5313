package cache

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

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
func (e *Entry) Truncate(n int64) error { return e.f.Truncate(n) }

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

// Reader reads the pinned entry from its start, unverified: for an entry
// this process has just stored (CommitPinned), whose digest was checked as
// it was written.
func (p *Pin) Reader() (*io.SectionReader, error) {
	fi, err := p.f.Stat()
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(p.f, 0, fi.Size()), nil
}

// Release lets the entry be pruned again.
func (p *Pin) Release() { _ = p.f.Close() } // closing drops the flock
