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
	"fmt"
	"io"
	"os"
	"path"
	"strings"

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
	closer    *closer // of the layer being applied
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
	if len(u.dirs) >= maxCachedDirs {
		u.forgetDirs() // closed once the entry is done, as on a replace
	}
	u.dirs[name] = p
	return p, nil
}

// maxCachedDirs bounds the directory handles kept between entries: an
// image's number of directories must not meet the limit on open files
// (25,000 directories failed with "too many open files" under a hard limit
// of 20,000). Forgetting them all costs each later entry one resolution of
// its parent.
const maxCachedDirs = 512

// Stats returns the counts so far.
func (u *Unpacker) Stats() Stats { return u.stats }

// Layer applies one layer, given as its (possibly compressed) blob. The
// compression is detected from the stream: gzip, zstd or plain tar.
func (u *Unpacker) Layer(ctx context.Context, blob io.Reader) error {
	return u.LayerSpooled(ctx, blob, nil)
}

// LayerSpooled is Layer that also writes the layer's tar stream (the blob
// inflated) to spool, as it is extracted, on a goroutine of its own. It
// stops writing at spool's first error, which is spool's to remember; it
// returns only once spool has had everything it will get.
func (u *Unpacker) LayerSpooled(ctx context.Context, blob io.Reader, spool io.Writer) error {
	// Three stages on their own goroutines: reading the blob (network,
	// digest checks, the cache copy), inflating it, and extracting; the
	// slowest one, inflating, then has a core to itself.
	raw := ahead(blob)
	r, err := decompress(raw, spool)
	if err != nil {
		raw.Close()
		return err
	}
	defer func() {
		// Stop both stages, then let the tee finish: nothing writes to
		// spool once this returns.
		r.Close()
		raw.Close()
		r.wait()
	}()
	return u.apply(ctx, r)
}

// Tar applies one layer given as its tar stream, read as a tar whatever
// its first bytes are: a stream checked against its diff ID (a cached
// one) is the layer, and must not be taken for a compressed blob (a tar
// may begin with gzip's magic, the first entry's name being any bytes).
func (u *Unpacker) Tar(ctx context.Context, stream io.Reader) error {
	raw := ahead(stream)
	defer raw.Close()
	return u.apply(ctx, raw)
}

// MaxTrailing bounds what a layer's tar stream may hold after its
// end-of-archive marker (tar writers pad to their record size, 10 KiB by
// default): more is refused, so that no layer makes the unpack, or the
// cache, inflate and keep what is never extracted.
const MaxTrailing = 1 << 20

// apply extracts the tar stream r, then reads what follows its
// end-of-archive marker, so that a verifying reader underneath checks the
// digest, and a decompressor its trailer (gzip's CRC and size, zstd's
// frame end).
func (u *Unpacker) apply(ctx context.Context, r io.Reader) (err error) {
	u.closer = newCloser()
	defer func() { // every file of the layer closed, however it ends
		if cerr := u.closer.wait(err != nil); err == nil {
			err = cerr
		}
		u.closer = nil
	}()
	end := &endWatch{r: r}
	if err := u.tar(ctx, tar.NewReader(end)); err != nil {
		return err
	}
	return end.finish()
}

// finish checks that the tar ended with its end-of-archive marker, then
// reads what follows it, at most MaxTrailing bytes.
func (e *endWatch) finish() error {
	if e.ranOut {
		return fmt.Errorf("read tar: stream ends before the end-of-archive marker: %w", io.ErrUnexpectedEOF)
	}
	n, err := io.CopyN(io.Discard, e.r, MaxTrailing+1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read layer tail: %w", err)
	}
	if n > MaxTrailing {
		return fmt.Errorf("the layer holds more than %d KiB after its tar's end-of-archive marker", MaxTrailing>>10)
	}
	return nil
}

// Spool inflates a layer blob (gzip or zstd, detected from the stream, or
// a plain tar) and writes its tar stream to w, without extracting it: the
// tar's headers are read, so that the same bound as an unpack's holds on
// what follows the end-of-archive marker.
func Spool(blob io.Reader, w io.Writer) error {
	r, err := decompress(blob, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	tee := io.TeeReader(r, w)
	end := &endWatch{r: tee}
	tr := tar.NewReader(end)
	for {
		if _, err := tr.Next(); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
	}
	return end.finish()
}

// decompress detects the blob's compression and inflates it ahead of its
// reader, writing what it inflated to tee as well (when not nil).
func decompress(blob io.Reader, tee io.Writer) (tarStream, error) {
	br := bufio.NewReaderSize(blob, 64*1024)
	magic, _ := br.Peek(4)
	var zr io.ReadCloser = nopCloser{br}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		gr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr = gr
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		zr = d.IOReadCloser()
	}
	if zr, ok := zr.(nopCloser); ok && tee == nil {
		return zr, nil // a plain tar: the blob's read-ahead is enough
	}
	// Inflate on another core while this one extracts (a plain tar with a
	// tee goes through one as well, so that the tee has a goroutine).
	return aheadClosing(zr, tee), nil
}

// tarStream is an inflated layer being read.
type tarStream interface {
	io.ReadCloser
	wait() // returns once a tee has had everything read
}

type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }
func (nopCloser) wait()        {}

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
