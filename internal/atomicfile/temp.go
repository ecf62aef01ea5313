package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every temporary file rootfsctl creates next
// to a final path, so that leftovers of a crash are recognisable.
const TempPrefix = ".rootfsctl-tmp-"

// tempPrefix starts the temporary names of one owner (a step id).
func tempPrefix(owner string) string { return TempPrefix + owner + "-" }

// attempts bounds the retries when another process's cleanup removed or
// locked a name in the moment between its creation and our lock (a cache
// prune looping beside an apply wins that race now and then, rarely
// several times in a row).
const attempts = 64

// createTemp makes a new file dir/<prefix><random> inside root, opened for
// writing with mode 0600, and returns it locked, with its name inside
// root. The lock lasts until the file is closed: rename it into place
// before closing it.
func createTemp(root *os.Root, dir, prefix string) (*os.File, string, error) {
	for range attempts {
		name := path.Join(dir, prefix+randomSuffix())
		f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		// Between the create and the lock, another run's cleanup may have
		// locked the name and removed it: then the name is no longer this
		// file, and a fresh one is made.
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue
			}
			return nil, "", fmt.Errorf("lock %s: %w", name, err)
		}
		if same, err := names(root, name, f); err != nil || !same {
			f.Close()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, "", err
			}
			continue
		}
		return f, name, nil
	}
	return nil, "", fmt.Errorf("create a temporary file in %s: another process kept removing it", dir)
}

// names reports whether name inside root is still the file f.
func names(root *os.Root, name string, f *os.File) (bool, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return false, err
	}
	mine, err := f.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, mine), nil
}

// RemoveUnheld removes the regular file name inside root if no process
// holds a lock on it, and reports whether it did. Best effort: a file it
// cannot open or lock is left alone.
func RemoveUnheld(root *os.Root, name string) bool {
	fi, err := root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false // in use by a live process
	}
	// Locked by us now, so its writer is gone; but the name must still be
	// the file we locked (a writer may have just renamed it into place and
	// another taken the name, which the random names make unlikely).
	if same, err := names(root, name, f); err != nil || !same {
		return false
	}
	return root.Remove(name) == nil
}

// RemoveTemps deletes owner's leftover temporary files in dir (inside
// root), for example after a crash: only those no live process holds,
// since another run may be writing into the same directory. Best effort:
// a missing dir has none.
func RemoveTemps(root *os.Root, dir, owner string) {
	d, err := root.Open(dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		if !strings.HasPrefix(n, tempPrefix(owner)) {
			continue
		}
		p := path.Join(dir, n)
		if fi, err := root.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			// A staged symlink cannot carry a lock. Symlinks are staged only
			// inside a machine, whose lock keeps other runs out, and only
			// by their owner step, which is the one cleaning up here.
			_ = root.Remove(p)
			continue
		}
		RemoveUnheld(root, p)
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}
