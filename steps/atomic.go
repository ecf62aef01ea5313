package steps

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/rootfsctl/rootfsctl/steps/temp"
)

// TempPrefix starts the name of every temporary file rootfsctl creates next
// to a final path, so that leftovers of a crash are recognisable.
const TempPrefix = ".rootfsctl-tmp-"

// staged is a file being written next to its final name inside a root. It
// hashes what it is given, and only Commit makes it visible (rename), so a
// reader never sees a partial or unverified file and the previous file stays
// in place until then.
type staged struct {
	root      *os.Root
	name, tmp string
	f         *os.File
	h         hash.Hash
	n         int64
}

// stage creates the temporary file for name (creating parent directories).
// owner (a step id) is part of the temporary name, so that a step cleaning
// up after a crash removes only its own leftovers, never the files another
// step is writing into the same directory at that moment.
//
// The temporary file is locked (package temp) until it is renamed into
// place or removed, so another run's cleanup in a shared directory (the
// host's nspawn settings) never removes it while it is being written.
func stage(root *os.Root, name, owner string) (*staged, error) {
	dir := path.Dir(name)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create directory %s: %w", dir, err)
	}
	f, tmp, err := temp.Create(root, dir, tempPrefix(owner)+path.Base(name)+"-")
	if err != nil {
		return nil, fmt.Errorf("create temporary file for %s: %w", name, err)
	}
	return &staged{root: root, name: name, tmp: tmp, f: f, h: sha256.New()}, nil
}

func (s *staged) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// Truncate and Seek let a download restart from the beginning.
func (s *staged) Truncate(n int64) error {
	if n != 0 {
		return errors.New("staged files can only be truncated to zero")
	}
	s.h.Reset()
	s.n = 0
	return s.f.Truncate(0)
}

func (s *staged) Seek(off int64, whence int) (int64, error) { return s.f.Seek(off, whence) }

// Digest is the hex SHA-256 of what was written.
func (s *staged) Digest() string { return hex.EncodeToString(s.h.Sum(nil)) }

// Commit sets the mode, syncs, and renames the file into place. The file
// stays open, and so locked, until it has its final name.
func (s *staged) Commit(mode fs.FileMode) (err error) {
	defer func() {
		if err != nil {
			s.Abort()
		}
	}()
	// fchmod, so the umask does not decide the final mode.
	if err = s.f.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", s.name, err)
	}
	if err = s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.name, err)
	}
	if fi, lerr := s.root.Lstat(s.name); lerr == nil && fi.IsDir() {
		return fmt.Errorf("install %s: a directory is in the way", s.name)
	}
	if err = s.root.Rename(s.tmp, s.name); err != nil {
		return fmt.Errorf("rename into place %s: %w", s.name, err)
	}
	// Renamed: there is no temporary file left to remove on an error below.
	s.tmp = ""
	if err = s.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.name, err)
	}
	return syncDir(s.root, path.Dir(s.name))
}

// Abort removes the temporary file, while still holding its lock. Best
// effort: a leftover is removed by the next run's cleanup.
func (s *staged) Abort() {
	if s.tmp != "" {
		_ = s.root.Remove(s.tmp)
		s.tmp = ""
	}
	_ = s.f.Close()
}

// tempPrefix starts the temporary names of one owner.
func tempPrefix(owner string) string { return TempPrefix + owner + "-" }

// writeAtomic writes r to name inside root through a staged file.
func writeAtomic(root *os.Root, name string, r io.Reader, mode fs.FileMode, owner string) error {
	s, err := stage(root, name, owner)
	if err != nil {
		return err
	}
	if _, err := io.Copy(s, r); err != nil {
		s.Abort()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return s.Commit(mode)
}

// syncDir makes a rename in dir durable.
func syncDir(root *os.Root, dir string) error {
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

// removeTemps deletes owner's leftover temporary files in dir (inside
// root), for example after a crash: only those no live process holds
// (package temp), since another run may be writing into the same
// directory. Best effort: a missing dir has none.
func removeTemps(root *os.Root, dir, owner string) {
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
		temp.RemoveUnheld(root, p)
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}
