// Package unpack applies OCI image layers (tar streams) to a directory, as
// container runtimes do: in order, with whiteouts and opaque directories,
// hard links, symlinks stored as they are, and (as root) owners, modes,
// extended attributes and device nodes.
//
// Layers are untrusted input. Every file system call goes through an
// os.Root (or an openat-style call on a directory opened through it), so
// no entry, link or symlink in a layer can make it touch anything outside
// the target. It must never use plain path joins on the target.
package unpack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Options tune the unpacking.
type Options struct {
	// Privileged keeps owners, device nodes and security.* / trusted.*
	// xattrs; without it those are skipped and counted in Stats.
	Privileged bool
}

// Stats says what a run did and skipped.
type Stats struct {
	Entries        int
	Bytes          int64 // file content written
	Whiteouts      int
	SkippedOwners  int // unprivileged: entries whose owner was not kept
	SkippedDevices int // unprivileged: device nodes and fifos not created
	SkippedXattrs  int // unprivileged: security.* or trusted.* xattrs not set
	IgnoredEntries int // entry types with no meaning on disk (global headers)
}

// Unpacker applies layers to one root directory.
type Unpacker struct {
	root  *os.Root
	opts  Options
	stats Stats
	buf   []byte
}

// New returns an Unpacker writing into root.
func New(root *os.Root, opts Options) *Unpacker {
	return &Unpacker{root: root, opts: opts, buf: make([]byte, 1<<20)}
}

// Stats returns the counts so far.
func (u *Unpacker) Stats() Stats { return u.stats }

// dirAttr is applied to a directory after its layer is done, so that a
// read-only directory does not block writing its own children and its
// mtime is not disturbed by them.
type dirAttr struct {
	name     string
	mode     fs.FileMode
	uid, gid int
	mtime    time.Time
	xattrs   map[string]string
}

// Layer applies one layer, given as its (possibly compressed) blob. The
// compression is detected from the stream: gzip, zstd or plain tar.
func (u *Unpacker) Layer(ctx context.Context, blob io.Reader) error {
	br := bufio.NewReaderSize(blob, 64*1024)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	if err := u.tar(ctx, tar.NewReader(r)); err != nil {
		return err
	}
	// Read to the end so a verifying reader underneath checks the digest.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read layer tail: %w", err)
	}
	return nil
}

func (u *Unpacker) tar(ctx context.Context, tr *tar.Reader) error {
	seen := map[string]bool{} // entries of this layer, which opaque markers must keep
	var dirs []dirAttr
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		u.stats.Entries++
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			if hdr.Typeflag == tar.TypeDir {
				dirs = append(dirs, u.dirAttrOf(".", hdr))
			}
			continue
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		switch {
		case base == ".wh..wh..opq":
			u.stats.Whiteouts++
			if err := u.opaque(dir, seen); err != nil {
				return err
			}
			continue
		case strings.HasPrefix(base, ".wh."):
			u.stats.Whiteouts++
			target := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			if err := u.root.RemoveAll(target); err != nil {
				return fmt.Errorf("whiteout %s: %w", target, err)
			}
			continue
		}
		if dir != "." {
			if err := u.root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create parent of %s: %w", name, err)
			}
		}
		seen[name] = true
		if err := u.entry(tr, hdr, name, &dirs); err != nil {
			return err
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := u.applyDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// entryName cleans a layer entry's name. Leading "/" and "./" are relative
// to the rootfs, as in every container runtime; ".." that would leave it
// is refused.
func entryName(raw string) (string, error) {
	if strings.ContainsRune(raw, 0) {
		return "", fmt.Errorf("layer entry %q: NUL in name; refusing", raw)
	}
	name := path.Clean("/" + raw)[1:]
	if name == "" {
		return ".", nil
	}
	for _, part := range strings.Split(strings.TrimPrefix(raw, "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("layer entry %q: .. in name; refusing", raw)
		}
	}
	return name, nil
}

// replace removes whatever is at name unless it is a directory and a
// directory is wanted.
func (u *Unpacker) replace(name string, wantDir bool) error {
	fi, err := u.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("stat %s: %w", name, err)
	case fi.IsDir() && wantDir:
		return nil
	}
	if err := u.root.RemoveAll(name); err != nil {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	return nil
}

func (u *Unpacker) entry(tr *tar.Reader, hdr *tar.Header, name string, dirs *[]dirAttr) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.replace(name, true); err != nil {
			return err
		}
		if err := u.root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create directory %s: %w", name, err)
		}
		*dirs = append(*dirs, u.dirAttrOf(name, hdr))
		return nil
	case tar.TypeReg, tar.TypeRegA:
		return u.regular(tr, hdr, name)
	case tar.TypeSymlink:
		if err := u.replace(name, false); err != nil {
			return err
		}
		// The target is stored as it is; os.Root never follows it here.
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return fmt.Errorf("create symlink %s: %w", name, err)
		}
		return u.owner(name, hdr)
	case tar.TypeLink:
		target, err := entryName(hdr.Linkname)
		if err != nil || target == "." {
			return fmt.Errorf("hard link %s -> %q: target outside the rootfs; refusing", name, hdr.Linkname)
		}
		if err := u.replace(name, false); err != nil {
			return err
		}
		if err := u.root.Link(target, name); err != nil {
			return fmt.Errorf("hard link %s -> %s: %w", name, target, err)
		}
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !u.opts.Privileged && hdr.Typeflag != tar.TypeFifo {
			u.stats.SkippedDevices++
			return nil
		}
		return u.special(hdr, name)
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		u.stats.IgnoredEntries++
		return nil
	}
	u.stats.IgnoredEntries++
	return nil
}

func (u *Unpacker) regular(tr *tar.Reader, hdr *tar.Header, name string) error {
	if err := u.replace(name, false); err != nil {
		return err
	}
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	n, err := io.CopyBuffer(f, tr, u.buf)
	u.stats.Bytes += n
	if err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if u.opts.Privileged {
		// Owner first: chown clears setuid and setgid bits.
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			f.Close()
			return fmt.Errorf("chown %s: %w", name, err)
		}
	} else if hdr.Uid != os.Getuid() || hdr.Gid != os.Getgid() {
		u.stats.SkippedOwners++
	}
	if err := f.Chmod(tarMode(hdr)); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if err := u.xattrs(int(f.Fd()), name, hdr.PAXRecords); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return u.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

// special creates a device node or fifo with mknodat on the parent
// directory, opened through the root.
func (u *Unpacker) special(hdr *tar.Header, name string) error {
	if err := u.replace(name, false); err != nil {
		return err
	}
	dir, base := path.Split(name)
	if dir == "" {
		dir = "."
	}
	d, err := u.root.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
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
	if err := unix.Mknodat(int(d.Fd()), base, mode, dev); err != nil {
		return fmt.Errorf("mknod %s: %w", name, err)
	}
	if err := u.owner(name, hdr); err != nil {
		return err
	}
	// mknod applies the umask; set the mode exactly.
	return u.root.Chmod(name, tarMode(hdr))
}

func (u *Unpacker) owner(name string, hdr *tar.Header) error {
	if !u.opts.Privileged {
		if hdr.Uid != os.Getuid() || hdr.Gid != os.Getgid() {
			u.stats.SkippedOwners++
		}
		return nil
	}
	if err := u.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	return nil
}

func (u *Unpacker) dirAttrOf(name string, hdr *tar.Header) dirAttr {
	a := dirAttr{name: name, mode: tarMode(hdr), uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime}
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			if a.xattrs == nil {
				a.xattrs = map[string]string{}
			}
			a.xattrs[k] = v
		}
	}
	return a
}

func (u *Unpacker) applyDir(a dirAttr) error {
	if u.opts.Privileged {
		if err := u.root.Lchown(a.name, a.uid, a.gid); err != nil {
			return fmt.Errorf("chown %s: %w", a.name, err)
		}
	} else if a.uid != os.Getuid() || a.gid != os.Getgid() {
		u.stats.SkippedOwners++
	}
	mode := a.mode
	if !u.opts.Privileged {
		mode |= 0o700 // we must still be able to manage it as an ordinary user
	}
	if err := u.root.Chmod(a.name, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", a.name, err)
	}
	if len(a.xattrs) > 0 {
		d, err := u.root.Open(a.name)
		if err != nil {
			return fmt.Errorf("open %s: %w", a.name, err)
		}
		err = u.xattrs(int(d.Fd()), a.name, a.xattrs)
		d.Close()
		if err != nil {
			return err
		}
	}
	return u.root.Chtimes(a.name, a.mtime, a.mtime)
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
				u.stats.SkippedXattrs++
				continue
			}
			return fmt.Errorf("set xattr %s on %s: %w", attr, name, err)
		}
	}
	return nil
}

// opaque empties dir of everything lower layers put there.
func (u *Unpacker) opaque(dir string, seen map[string]bool) error {
	d, err := u.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opaque %s: %w", dir, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("opaque %s: %w", dir, err)
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if seen[p] {
			continue
		}
		if err := u.root.RemoveAll(p); err != nil {
			return fmt.Errorf("opaque %s: %w", dir, err)
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
