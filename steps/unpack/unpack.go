// Package unpack applies OCI image layers (tar streams) to a directory, as
// container runtimes do: in order, with whiteouts and opaque directories,
// hard links, symlinks stored as they are, and (as root) owners, modes,
// extended attributes and device nodes.
//
// Layers are untrusted input. Every file system call goes through an
// os.Root (or an openat-style call on a directory opened through it), so
// no entry, link or symlink in a layer can make it touch anything outside
// the target. It must never use plain path joins on the target.
//
// Symlinks in the parents of an entry resolve as they would inside the
// machine, as in a chroot at the target: an absolute target from the
// target's root, ".." no higher than it. Images rely on that (Debian's
// var/run -> /run). It is done here, one component at a time (resolve.go),
// because os.Root refuses absolute symlinks outright.
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
	// UnsupportedXattrs were refused by the file system (or are in a
	// namespace no file system has), privileged or not.
	UnsupportedXattrs int
	IgnoredEntries    int // entry types with no meaning on disk (global headers)
}

// Unpacker applies layers to one root directory.
//
// Parent directories are resolved once (resolve: component by component,
// with chroot semantics, nothing ever opened outside the root) and kept as
// file descriptors; each entry is then created with *at system calls on
// its base name alone, never following a symlink in the final component.
// That confines every write to the root with one system call per
// operation instead of one per path component.
//
// A cached handle is only right while nothing on the path it was resolved
// by changes: a symlink on it retargeted, a directory on it (or a
// symlink's target) removed. Creating entries never changes how existing
// paths resolve (a path that resolved had no missing component left), so
// every removal or replacement of a directory or a symlink drops all
// cached handles, and nothing else needs to.
type Unpacker struct {
	root  *os.Root
	top   *os.File // the root directory, where every resolution starts
	topFD int
	opts  Options
	stats Stats
	buf   []byte
	link  []byte            // readlinkat buffer
	dirs  map[string]parent // resolved parent directories, by the path entries name them by
	// forgotten are handles dropped from dirs while an entry was applied.
	forgotten []int
}

// New returns an Unpacker writing into root. Close releases its directory
// handles.
func New(root *os.Root, opts Options) *Unpacker {
	return &Unpacker{root: root, opts: opts, buf: make([]byte, 1<<20), link: make([]byte, unix.PathMax), dirs: map[string]parent{}}
}

// Close releases the directory handles.
func (u *Unpacker) Close() error {
	u.forgetDirs()
	u.closeForgotten()
	if u.top == nil {
		return nil
	}
	err := u.top.Close()
	u.top = nil
	return err
}

// topFd returns the handle on the root directory, opened on first use.
func (u *Unpacker) topFd() (int, error) {
	if u.top == nil {
		d, err := u.root.Open(".")
		if err != nil {
			return -1, fmt.Errorf("open root: %w", err)
		}
		u.top, u.topFD = d, int(d.Fd())
	}
	return u.topFD, nil
}

// forgetDirs closes every cached directory handle: a directory or symlink
// is about to be removed or replaced, which may change what any path
// resolves to (through symlinks, a path need not contain the changed name).
//
// The entry being applied may still be using one of them (its parent), so
// they are closed only once it is done (closeForgotten).
func (u *Unpacker) forgetDirs() {
	for p, d := range u.dirs {
		u.forgotten = append(u.forgotten, d.fd)
		delete(u.dirs, p)
	}
}

func (u *Unpacker) closeForgotten() {
	for _, fd := range u.forgotten {
		unix.Close(fd) // read-only directory handle: nothing to lose
	}
	u.forgotten = u.forgotten[:0]
}

// dir returns directory name inside the root, resolved and, with create,
// made where missing. Without create, a missing directory is an error
// matching fs.ErrNotExist.
func (u *Unpacker) dir(name string, create bool) (parent, error) {
	if p, ok := u.dirs[name]; ok {
		return p, nil
	}
	p, err := u.resolve(name, create)
	if err != nil {
		return parent{}, err
	}
	u.dirs[name] = p
	return p, nil
}

// Stats returns the counts so far.
func (u *Unpacker) Stats() Stats { return u.stats }

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

// Layer applies one layer, given as its (possibly compressed) blob. The
// compression is detected from the stream: gzip, zstd or plain tar.
func (u *Unpacker) Layer(ctx context.Context, blob io.Reader) error {
	// Three stages on their own goroutines: reading the blob (network,
	// digest checks, the cache copy), inflating it, and extracting; the
	// slowest one, inflating, then has a core to itself.
	raw := ahead(blob)
	defer raw.Close()
	br := bufio.NewReaderSize(raw, 64*1024)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		// Inflate on another core while this one extracts.
		pr := ahead(zr)
		defer pr.Close()
		r = pr
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	end := &endWatch{r: r}
	if err := u.tar(ctx, tar.NewReader(end)); err != nil {
		return err
	}
	if end.ranOut {
		return fmt.Errorf("read tar: stream ends before the end-of-archive marker: %w", io.ErrUnexpectedEOF)
	}
	// Read to the end so a verifying reader underneath checks the digest,
	// and a decompressor its trailer (gzip's CRC and size, zstd's frame end).
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("read layer tail: %w", err)
	}
	return nil
}

// endWatch tells a tar stream that ended from one that was cut short.
// tar.Reader returns the same io.EOF after the two zero blocks that end an
// archive as when the stream stops on a header boundary with none or one
// of them; only in the second case did it ask for more and get nothing.
// A layer cut there would otherwise lose its last entries (and a later
// layer's whiteouts) without a word; a plain tar has no other way to tell.
type endWatch struct {
	r      io.Reader
	ranOut bool
}

func (e *endWatch) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if n == 0 && err == io.EOF && len(p) > 0 {
		e.ranOut = true
	}
	return n, err
}

// layer is what applying one layer keeps track of.
type layer struct {
	// seen holds the resolved paths of this layer's entries and of the
	// directories holding them: what opaque markers must keep.
	seen map[string]bool
	dirs []dirAttr
}

// wrote records that the layer put an entry at p, a resolved path.
func (l *layer) wrote(p string) {
	for ; p != "." && !l.seen[p]; p = path.Dir(p) {
		l.seen[p] = true
	}
}

func (u *Unpacker) tar(ctx context.Context, tr *tar.Reader) error {
	l := layer{seen: map[string]bool{}}
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
		err = u.next(tr, hdr, &l)
		u.closeForgotten()
		if err != nil {
			return err
		}
	}
	for i := len(l.dirs) - 1; i >= 0; i-- {
		if err := u.applyDir(l.dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// dest is where an entry goes: base in a resolved parent directory.
type dest struct {
	dir  parent
	base string
	name string // the entry's name in the layer, for messages
	path string // where that resolved to: a path os.Root can open as it is
}

// next applies one entry of the layer.
func (u *Unpacker) next(tr *tar.Reader, hdr *tar.Header, l *layer) error {
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		// The target directory's owner, mode and xattrs are the
		// caller's, not the image's (a rootfs must not be opened to
		// other users by its "./" entry); only its time is kept.
		if hdr.Typeflag == tar.TypeDir {
			if a, err := u.dirAttrOf(unix.AT_FDCWD, ".", ".", hdr); err == nil {
				a.rootOnly = true
				l.dirs = append(l.dirs, a)
			}
		}
		return nil
	}
	dir, base := splitName(name)
	switch {
	case base == ".wh..wh..opq":
		u.stats.Whiteouts++
		return u.opaque(dir, l.seen)
	case strings.HasPrefix(base, ".wh."):
		u.stats.Whiteouts++
		return u.whiteout(dir, strings.TrimPrefix(base, ".wh."))
	}
	p, err := u.dir(dir, true)
	if err != nil {
		return fmt.Errorf("parent of %s: %w", name, err)
	}
	at := dest{dir: p, base: base, name: name, path: name}
	if p.path != dir {
		at.path = path.Join(p.path, base) // reached through a symlink
	}
	l.wrote(at.path)
	return u.entry(tr, hdr, at, &l.dirs)
}

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

func splitName(name string) (dir, base string) {
	dir, base = path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	return dir, base
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
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
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
