package unpack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// replace removes whatever is at the destination unless it is a
// directory and a directory is wanted. It reports whether a directory is
// there to keep.
func (u *Unpacker) replace(at dest, wantDir bool) (keptDir bool, err error) {
	var st unix.Stat_t
	err = unix.Fstatat(at.dir.fd, at.base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("stat %s: %w", at.name, err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		if wantDir {
			return true, nil
		}
		u.forgetDirs()
		if err := u.root.RemoveAll(at.path); err != nil {
			return false, fmt.Errorf("replace %s: %w", at.name, err)
		}
		return false, nil
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		u.forgetDirs() // paths through the symlink resolve elsewhere now
	}
	if err := unix.Unlinkat(at.dir.fd, at.base, 0); err != nil {
		return false, fmt.Errorf("replace %s: %w", at.name, err)
	}
	return false, nil
}

func (u *Unpacker) entry(tr *tar.Reader, hdr *tar.Header, at dest, dirs *[]dirAttr) error {
	dfd, base, name := at.dir.fd, at.base, at.name
	switch hdr.Typeflag {
	case tar.TypeDir:
		kept, err := u.replace(at, true)
		if err != nil {
			return err
		}
		if !kept {
			if err := unix.Mkdirat(dfd, base, 0o755); err != nil {
				return fmt.Errorf("create directory %s: %w", name, err)
			}
		}
		a, err := u.dirAttrOf(dfd, base, at.path, hdr)
		if err != nil {
			return err
		}
		*dirs = append(*dirs, a)
		return nil
	case tar.TypeReg, tar.TypeRegA:
		return u.regular(tr, hdr, at)
	case tar.TypeSymlink:
		if _, err := u.replace(at, false); err != nil {
			return err
		}
		// The target is stored as it is and never followed here.
		if err := unix.Symlinkat(hdr.Linkname, dfd, base); err != nil {
			return fmt.Errorf("create symlink %s: %w", name, err)
		}
		return u.owner(dfd, base, name, hdr)
	case tar.TypeLink:
		return u.hardLink(hdr, at)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !u.opts.Privileged && hdr.Typeflag != tar.TypeFifo {
			u.stats.SkippedDevices++
			return nil
		}
		return u.special(hdr, at)
	}
	u.stats.IgnoredEntries++ // global headers and other entries with no file
	return nil
}

// hardLink links the destination to an earlier entry. The target's
// parents resolve as an entry's do; the target itself is linked as it is,
// a symlink too, never followed.
func (u *Unpacker) hardLink(hdr *tar.Header, at dest) error {
	target, err := entryName(hdr.Linkname)
	if err != nil || target == "." {
		return fmt.Errorf("hard link %s -> %q: target outside the rootfs; refusing", at.name, hdr.Linkname)
	}
	if _, err := u.replace(at, false); err != nil {
		return err
	}
	dir, base := splitName(target)
	p, err := u.dir(dir, false)
	if err != nil {
		return fmt.Errorf("hard link %s -> %s: %w", at.name, target, err)
	}
	if err := unix.Linkat(p.fd, base, at.dir.fd, at.base, 0); err != nil {
		return fmt.Errorf("hard link %s -> %s: %w", at.name, target, err)
	}
	return nil
}

func (u *Unpacker) regular(tr *tar.Reader, hdr *tar.Header, at dest) error {
	if _, err := u.replace(at, false); err != nil {
		return err
	}
	dfd, base, name := at.dir.fd, at.base, at.name
	fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	n, err := io.CopyBuffer(fileWriter{f}, tr, u.buf)
	u.stats.Bytes += n
	if err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if u.opts.Privileged {
		// Owner first: chown clears setuid and setgid bits.
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			f.Close()
			return fmt.Errorf("chown %s: %w", name, err)
		}
	} else if hdr.Uid != os.Getuid() || hdr.Gid != os.Getgid() {
		u.stats.SkippedOwners++
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if err := u.xattrs(fd, name, hdr.PAXRecords); err != nil {
		f.Close()
		return err
	}
	ts := unix.NsecToTimespec(hdr.ModTime.UnixNano())
	if err := unix.UtimesNanoAt(fd, "", []unix.Timespec{ts, ts}, unix.AT_EMPTY_PATH); err != nil {
		// Older kernels lack AT_EMPTY_PATH for utimensat; use the name.
		if err := unix.UtimesNanoAt(dfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			f.Close()
			return fmt.Errorf("set times of %s: %w", name, err)
		}
	}
	// Closed, and its writeback started, off the extracting thread.
	return u.closer.add(f)
}

// fileWriter hides *os.File's ReadFrom, so io.CopyBuffer uses our buffer
// instead of probing for splice/sendfile on every small file.
type fileWriter struct{ f *os.File }

func (w fileWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// special creates a device node or fifo with mknodat.
func (u *Unpacker) special(hdr *tar.Header, at dest) error {
	if _, err := u.replace(at, false); err != nil {
		return err
	}
	dfd, base, name := at.dir.fd, at.base, at.name
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	if err := unix.Mknodat(dfd, base, mode, dev); err != nil {
		return fmt.Errorf("mknod %s: %w", name, err)
	}
	if err := u.owner(dfd, base, name, hdr); err != nil {
		return err
	}
	// mknod applies the umask; set the mode exactly.
	if err := unix.Fchmodat(dfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	return nil
}

func (u *Unpacker) owner(dfd int, base, name string, hdr *tar.Header) error {
	if !u.opts.Privileged {
		if hdr.Uid != os.Getuid() || hdr.Gid != os.Getgid() {
			u.stats.SkippedOwners++
		}
		return nil
	}
	if err := unix.Fchownat(dfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	return nil
}
