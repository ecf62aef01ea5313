package unpack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// dirAttr is applied to a directory after its layer is done, so that a
// read-only directory does not block writing its own children and its
// mtime is not disturbed by them.
type dirAttr struct {
	name     string
	dev, ino uint64 // the directory the entry made or kept; attributes go to it only
	mode     fs.FileMode
	uid, gid int
	mtime    time.Time
	xattrs   map[string]string
	rootOnly bool // the target itself: only its time is set
}

// dirAttrOf records a directory entry's attributes and which directory
// (base in dfd; dfd AT_FDCWD with "." for the root) they belong to.
func (u *Unpacker) dirAttrOf(dfd int, base, name string, hdr *tar.Header) (dirAttr, error) {
	var st unix.Stat_t
	var err error
	if dfd == unix.AT_FDCWD {
		err = u.statRoot(&st)
	} else {
		err = unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return dirAttr{}, fmt.Errorf("stat %s: %w", name, err)
	}
	a := dirAttr{name: name, dev: st.Dev, ino: st.Ino, mode: tarMode(hdr), uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime}
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			if a.xattrs == nil {
				a.xattrs = map[string]string{}
			}
			a.xattrs[k] = v
		}
	}
	return a, nil
}

func (u *Unpacker) statRoot(st *unix.Stat_t) error {
	d, err := u.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Fstat(int(d.Fd()), st)
}

// applyDir sets a directory's owner, mode, xattrs and time through a
// handle on the directory itself, opened inside the root.
func (u *Unpacker) applyDir(a dirAttr) error {
	d, err := u.root.Open(a.name)
	if err != nil {
		// Removed, or made unreachable, later in the same layer: its
		// attributes went with it.
		return nil
	}
	defer d.Close()
	fd := int(d.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", a.name, err)
	}
	if st.Dev != a.dev || st.Ino != a.ino {
		return nil // the name is another directory now (replaced later in the layer)
	}
	ts := unix.NsecToTimespec(a.mtime.UnixNano())
	if a.rootOnly {
		if err := unix.UtimesNanoAt(fd, "", []unix.Timespec{ts, ts}, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("set times of %s: %w", a.name, err)
		}
		return nil
	}
	if u.opts.Privileged {
		if err := unix.Fchown(fd, a.uid, a.gid); err != nil {
			return fmt.Errorf("chown %s: %w", a.name, err)
		}
	} else if a.uid != os.Getuid() || a.gid != os.Getgid() {
		u.stats.SkippedOwners++
	}
	mode := unixMode(a.mode)
	if !u.opts.Privileged {
		mode |= 0o700 // we must still be able to manage it as an ordinary user
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", a.name, err)
	}
	if err := u.xattrs(fd, a.name, a.xattrs); err != nil {
		return err
	}
	if err := unix.UtimesNanoAt(fd, "", []unix.Timespec{ts, ts}, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set times of %s: %w", a.name, err)
	}
	return nil
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// xattrs sets the SCHILY.xattr.* records on an open file. Unprivileged,
// security.* and trusted.* cannot be set and are counted instead.
func (u *Unpacker) xattrs(fd int, name string, pax map[string]string) error {
	for k, v := range pax {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if !u.opts.Privileged && (strings.HasPrefix(attr, "security.") || strings.HasPrefix(attr, "trusted.")) {
			u.stats.SkippedXattrs++
			continue
		}
		if err := unix.Fsetxattr(fd, attr, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				u.stats.UnsupportedXattrs++
				continue
			}
			return fmt.Errorf("set xattr %s on %s: %w", attr, name, err)
		}
	}
	return nil
}

// tarMode converts a tar header's mode, including setuid, setgid and
// sticky bits, to an fs.FileMode.
func tarMode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode) & fs.ModePerm
	if hdr.Mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
