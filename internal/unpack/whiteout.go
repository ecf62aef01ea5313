package unpack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// whiteout removes base from dir, where a lower layer put it. dir resolves
// as an entry's parent does; base itself is removed, never followed.
func (u *Unpacker) whiteout(dir, base string) error {
	target := path.Join(dir, base)
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("whiteout %s: not a name; refusing", target)
	}
	p, err := u.dir(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing there to hide
	}
	if err != nil {
		return fmt.Errorf("whiteout %s: %w", target, err)
	}
	var st unix.Stat_t
	switch err := unix.Fstatat(p.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("whiteout %s: %w", target, err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Mode&unix.S_IFMT == unix.S_IFLNK:
		u.forgetDirs() // paths through it resolve elsewhere now, or not at all
	}
	if err := u.root.RemoveAll(path.Join(p.path, base)); err != nil {
		return fmt.Errorf("whiteout %s: %w", target, err)
	}
	return nil
}

// opaque empties dir of everything lower layers put there, at any depth;
// what this layer wrote there (seen) stays. dir resolves as an entry's
// parent does.
func (u *Unpacker) opaque(dir string, seen map[string]bool) error {
	p, err := u.dir(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opaque %s: %w", dir, err)
	}
	if err := u.prune(p.fd, p.path, seen); err != nil {
		return fmt.Errorf("opaque %s: %w", dir, err)
	}
	return nil
}

// prune removes from directory dfd, at resolved path dir, every name the
// layer did not write. A directory the layer wrote, or wrote into, stays
// and is pruned in turn: the marker hides the lower content of the whole
// tree, also below directories the layer declared before the marker came.
func (u *Unpacker) prune(dfd int, dir string, seen map[string]bool) error {
	names, err := readNames(dfd)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if !seen[p] {
			u.forgetDirs()
			if err := u.root.RemoveAll(p); err != nil {
				return fmt.Errorf("remove %s: %w", p, err)
			}
			continue
		}
		sub, err := openDir(dfd, n)
		if errors.Is(err, unix.ENOTDIR) {
			continue // a file or symlink of this layer
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		err = u.prune(sub, p, seen)
		unix.Close(sub) // read-only directory handle: nothing to lose
		if err != nil {
			return err
		}
	}
	return nil
}

// readNames lists directory dfd through a handle of its own, so that the
// read position of dfd (a cached handle) is left alone.
func readNames(dfd int) ([]string, error) {
	fd, err := openDir(dfd, ".")
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	d := os.NewFile(uintptr(fd), ".")
	defer d.Close() // read-only directory handle: nothing to lose
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	return names, nil
}
