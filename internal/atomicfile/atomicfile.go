// Package atomicfile writes files that appear whole or not at all: a File
// is written under a temporary name on the same file system, hashed as it
// is written, and renamed into place (after an fsync, when it is a file a
// machine or the host keeps), so a reader never sees a partial or
// unverified file and the previous one stays in place until then.
//
// Its temporary files are told from the leftovers of a killed run by a
// lock: a temporary file is in use exactly while an open file description
// holds an exclusive flock on it, from before its name can be seen as ours
// until after it is renamed into place or removed. The kernel drops the
// lock when its holder dies, so cleanup (RemoveUnheld, RemoveTemps) removes
// any temporary file it can lock, and nothing else. Every rootfsctl run
// sharing a directory (a host's nspawn settings, the download cache, a
// machine) must write there through this package.
//
// It writes only through an os.Root the caller opened (a machine, a host
// directory, the cache), never through a path join, and must not decide by
// names, ages or process ids what is a leftover.
package atomicfile

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

	"golang.org/x/sys/unix"
)

// File is a file being written under a temporary name inside a root.
type File struct {
	root *os.Root
	name string // the final name inside root; "" until given to RenameTo
	tmp  string // the temporary name; "" once renamed or removed
	f    *os.File
	h    hash.Hash
	// known is the digest of content copied by CopyKnown, not hashed here.
	known string
	// unstarted is how much was written since writeback was last started.
	unstarted int64
}

// Create starts writing name inside root, beside it, creating its parent
// directories. owner (a step id) is part of the temporary name, so that an
// owner cleaning up after a crash (RemoveTemps) removes only its own
// leftovers, never the files another is writing into the same directory at
// that moment.
func Create(root *os.Root, name, owner string) (*File, error) {
	dir := path.Dir(name)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create directory %s: %w", dir, err)
	}
	f, tmp, err := createTemp(root, dir, tempPrefix(owner)+path.Base(name)+"-")
	if err != nil {
		return nil, fmt.Errorf("create temporary file for %s: %w", name, err)
	}
	return &File{root: root, name: name, tmp: tmp, f: f, h: sha256.New()}, nil
}

// CreateTemp starts writing a file whose final name is decided later, with
// RenameTo: the cache names an entry by its digest. Its temporary name is
// dir/<prefix><random> inside root.
func CreateTemp(root *os.Root, dir, prefix string) (*File, error) {
	f, tmp, err := createTemp(root, dir, prefix)
	if err != nil {
		return nil, err
	}
	return &File{root: root, tmp: tmp, f: f, h: sha256.New()}, nil
}

func (f *File) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	f.h.Write(p[:n])
	f.wrote(int64(n))
	return n, err
}

// writebackEvery is how much a File is written between starts of its
// writeback.
const writebackEvery = 8 << 20

// wrote starts writing a large file's content to disk as it is written,
// every writebackEvery bytes, in the writer's thread: a later sync (a
// Commit's fsync, or the sync of the whole file system that makes a
// machine's new rootfs durable, which catches the cache's entries too when
// they share its file system) then finds little left, instead of waiting
// for hundreds of megabytes. Advisory: an error here changes nothing; a
// sync reports real ones.
func (f *File) wrote(n int64) {
	f.unstarted += n
	if f.unstarted >= writebackEvery {
		_ = unix.SyncFileRange(int(f.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		f.unstarted = 0
	}
}

// Truncate and Seek let a download restart from the beginning.
func (f *File) Truncate(n int64) error {
	if n != 0 {
		return errors.New("files being written can only be truncated to zero")
	}
	f.h.Reset()
	return f.f.Truncate(0)
}

func (f *File) Seek(off int64, whence int) (int64, error) { return f.f.Seek(off, whence) }

// Digest is the hex SHA-256 of what was written so far.
func (f *File) Digest() string {
	if f.known != "" {
		return f.known
	}
	return hex.EncodeToString(f.h.Sum(nil))
}

// CopyKnown fills the new file with src, whose SHA-256 the caller verified
// moments ago (a cache entry this run wrote and hashed), by an in-kernel
// copy (copy_file_range) without hashing it again; Digest then says
// digest. It is for a file nothing was written to yet. It copies in
// chunks and stops between them when ctx is done.
func (f *File) CopyKnown(ctx context.Context, src *os.File, digest string) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.f.ReadFrom(&io.LimitedReader{R: src, N: copyChunk})
		if err != nil {
			return err
		}
		f.wrote(n)
		if n < copyChunk {
			break
		}
	}
	f.known = digest
	return nil
}

// copyChunk is how much CopyKnown copies between looks at its context.
const copyChunk = 16 << 20

// Name is the final name inside the root.
func (f *File) Name() string { return f.name }

// Commit sets the mode, syncs, and renames the file into place, then makes
// the rename durable. The file stays open, and so locked, until it has its
// final name. On an error the temporary file is removed.
func (f *File) Commit(mode fs.FileMode) (err error) {
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	// fchmod, so the umask does not decide the final mode.
	if err = f.f.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", f.name, err)
	}
	if err = f.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.name, err)
	}
	if fi, lerr := f.root.Lstat(f.name); lerr == nil && fi.IsDir() {
		return fmt.Errorf("install %s: a directory is in the way", f.name)
	}
	if err = f.RenameTo(f.name); err != nil {
		return fmt.Errorf("rename into place %s: %w", f.name, err)
	}
	if err = f.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.name, err)
	}
	return SyncDir(f.root, path.Dir(f.name))
}

// RenameTo renames the file to name inside the root, without syncing
// anything (content that is verified when read needs no fsync). The file
// stays open, and locked: Close it, or Detach it to keep holding it.
func (f *File) RenameTo(name string) error {
	// Start its writeback though: a later sync of the whole file system
	// (the machine's staging tree) then finds little left to write.
	_ = unix.SyncFileRange(int(f.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	if err := f.root.Rename(f.tmp, name); err != nil {
		return err
	}
	f.name, f.tmp = name, ""
	return nil
}

// Close closes a file renamed into place (its lock goes with it).
func (f *File) Close() error { return f.f.Close() }

// Detach hands over the open file after RenameTo, with its lock, to a
// caller that keeps holding it (a cache pin).
func (f *File) Detach() *os.File { return f.f }

// Link makes the complete file appear under its name only if the name is
// free (an error matching fs.ErrExist otherwise): synced, hard-linked to
// the name, and its temporary name removed. Two writers of one name cannot
// both succeed.
func (f *File) Link() error {
	defer f.Abort() // the file is the link now; its temporary name goes
	if err := f.f.Sync(); err != nil {
		return err
	}
	return f.root.Link(f.tmp, f.name)
}

// Abort removes the temporary file, while still holding its lock. Best
// effort: a leftover is removed by the next run's cleanup.
func (f *File) Abort() {
	if f.tmp != "" {
		_ = f.root.Remove(f.tmp)
		f.tmp = ""
	}
	_ = f.f.Close()
}

// WriteFile writes r to name inside root through a File.
func WriteFile(root *os.Root, name string, r io.Reader, mode fs.FileMode, owner string) error {
	f, err := Create(root, name, owner)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Commit(mode)
}

// Symlink makes name inside root a symlink to target: one made beside it
// and renamed over it, so name is the old entry or the new link, never
// missing. The temporary link carries no lock; RemoveTemps removes an
// owner's leftover links.
func Symlink(root *os.Root, target, name, owner string) error {
	dir := path.Dir(name)
	tmp := path.Join(dir, tempPrefix(owner)+path.Base(name)+"-"+randomSuffix())
	if err := root.Symlink(target, tmp); err != nil {
		return err
	}
	if err := root.Rename(tmp, name); err != nil {
		_ = root.Remove(tmp) // best effort: RemoveTemps takes a leftover
		return err
	}
	return SyncDir(root, dir)
}

// SyncDir makes a rename in dir durable.
func SyncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// OpenDir creates a host file's directory (like mkdir -p) and opens it as
// a root, so that the file is then written by its base name only: a
// symlink planted at that name is replaced, never followed.
func OpenDir(path string) (*os.Root, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return root, nil
}
