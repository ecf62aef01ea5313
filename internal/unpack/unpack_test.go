package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/internal/unpack"
)

func apply(t *testing.T, privileged bool, layers ...[]fixture.Entry) (string, *unpack.Unpacker, error) {
	t.Helper()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	u := unpack.New(root, unpack.Options{Privileged: privileged})
	for _, l := range layers {
		if err := u.Layer(context.Background(), bytes.NewReader(fixture.Tar(l))); err != nil {
			return dir, u, err
		}
	}
	return dir, u, nil
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestLayerSemantics(t *testing.T) {
	t.Parallel()
	dir, _, err := apply(t, false,
		[]fixture.Entry{
			{Name: "a/", Type: tar.TypeDir},
			{Name: "a/old", Body: "old"},
			{Name: "a/sub/deep", Body: "deep"},
			{Name: "gone", Body: "x"},
			{Name: "link", Type: tar.TypeSymlink, Linkname: "target"},
			{Name: "target", Body: "target content"},
			{Name: "was-dir/inner", Body: "x"},
			{Name: "ro/", Type: tar.TypeDir, Mode: 0o555},
			{Name: "ro/file", Body: "in a read-only dir"},
		},
		[]fixture.Entry{
			{Name: "a/new", Body: "new, before the opaque marker"},
			{Name: "a/.wh..wh..opq"},
			{Name: ".wh.gone"},
			{Name: "link", Body: "replaces the symlink"},
			{Name: "was-dir", Body: "now a file"},
			{Name: "hard", Type: tar.TypeLink, Linkname: "target"},
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"a/old": false, "a/sub": false, "a/new": true, "gone": false, "ro/file": true} {
		if exists(filepath.Join(dir, p)) != want {
			t.Errorf("%s exists=%v, want %v", p, !want, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "target")); string(b) != "target content" {
		t.Errorf("writing over a symlink wrote through it: target holds %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "link")); !fi.Mode().IsRegular() {
		t.Errorf("link is %v, want a regular file", fi.Mode())
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "was-dir")); !fi.Mode().IsRegular() {
		t.Errorf("was-dir is %v, want a regular file", fi.Mode())
	}
	a, _ := os.Stat(filepath.Join(dir, "hard"))
	b, _ := os.Stat(filepath.Join(dir, "target"))
	if !os.SameFile(a, b) {
		t.Error("hard is not a hard link of target")
	}
}

// TestSymlinksResolveAsInAChroot: parents (of entries, hard link targets
// and whiteouts) resolve through symlinks as they would inside the
// running machine: absolute targets from the rootfs root, as images use
// them (Debian's var/run -> /run). The entry itself never goes through a
// symlink: it replaces it.
func TestSymlinksResolveAsInAChroot(t *testing.T) {
	t.Parallel()
	debian := []fixture.Entry{
		{Name: "run/", Type: tar.TypeDir},
		{Name: "var/run", Type: tar.TypeSymlink, Linkname: "/run"},
		{Name: "var/lock", Type: tar.TypeSymlink, Linkname: "/run/lock"},
		{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\n"},
	}
	for _, tc := range []struct {
		name   string
		layers [][]fixture.Entry
		want   map[string]string // path -> as describeDisk puts it
		absent []string
	}{
		{"through an absolute symlink of a lower layer", [][]fixture.Entry{debian, {{Name: "var/run/foo", Body: "x"}}},
			map[string]string{"run/foo": "file x", "var/run": "symlink -> /run"}, nil},
		{"within one layer", [][]fixture.Entry{append(debian[:2:2], fixture.Entry{Name: "var/run/foo", Body: "x"})},
			map[string]string{"run/foo": "file x"}, nil},
		{"through a dangling absolute symlink", [][]fixture.Entry{debian, {{Name: "var/lock/subsys/x", Body: "x"}}},
			map[string]string{"run/lock/subsys/x": "file x", "var/lock": "symlink -> /run/lock"}, nil},
		{"dot dot above the root stays at the root", [][]fixture.Entry{{
			{Name: "a/b/up", Type: tar.TypeSymlink, Linkname: "../../../../../.."},
			{Name: "a/b/up/x", Body: "x"},
		}}, map[string]string{"x": "file x"}, nil},
		{"255 symlinks in a row", [][]fixture.Entry{symlinkChain(255)}, map[string]string{"end/x": "file through the chain"}, nil},
		{"hard link target through an absolute symlink", [][]fixture.Entry{
			append(debian, fixture.Entry{Name: "lnk", Type: tar.TypeSymlink, Linkname: "/etc"}),
			{{Name: "passwd", Type: tar.TypeLink, Linkname: "lnk/passwd"}},
		}, map[string]string{"passwd": "file root:x:0:0::/root:/bin/sh\n"}, nil},
		{"hard link to a symlink links the symlink", [][]fixture.Entry{debian, {{Name: "run2", Type: tar.TypeLink, Linkname: "var/run"}}},
			map[string]string{"run2": "symlink -> /run"}, nil},
		{"whiteout through an absolute symlink", [][]fixture.Entry{
			append(debian, fixture.Entry{Name: "run/pid", Body: "1"}),
			{{Name: "var/run/.wh.pid"}},
		}, map[string]string{"run": "dir"}, []string{"run/pid"}},
		{"opaque through an absolute symlink", [][]fixture.Entry{
			append(debian, fixture.Entry{Name: "run/old", Body: "1"}),
			{{Name: "var/run/new", Body: "2"}, {Name: "var/run/.wh..wh..opq"}},
		}, map[string]string{"run/new": "file 2"}, []string{"run/old"}},
		{"an entry replaces a symlink, never writes through it", [][]fixture.Entry{
			append(debian, fixture.Entry{Name: "etc/motd", Type: tar.TypeSymlink, Linkname: "/etc/passwd"}),
			{{Name: "etc/motd", Body: "hello"}},
		}, map[string]string{"etc/motd": "file hello", "etc/passwd": "file root:x:0:0::/root:/bin/sh\n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, _, err := apply(t, false, tc.layers...)
			if err != nil {
				t.Fatalf("Layer(): %v", err)
			}
			checkTree(t, dir, tc.want, tc.absent)
		})
	}
}

// TestOpaqueHidesLowerContentAtAnyDepth: an opaque marker hides all that
// lower layers put under its directory, also under subdirectories its own
// layer declared (or wrote into) before the marker; what the layer wrote
// stays, wherever the marker comes.
func TestOpaqueHidesLowerContentAtAnyDepth(t *testing.T) {
	t.Parallel()
	lower := []fixture.Entry{
		{Name: "a/b/old", Body: "old"},
		{Name: "a/b/c/older", Body: "older"},
		{Name: "a/top", Body: "top"},
		{Name: "a/l", Type: tar.TypeSymlink, Linkname: "/a/b"},
	}
	gone := []string{"a/b/old", "a/b/c", "a/top", "a/l"}
	for _, tc := range []struct {
		name   string
		upper  []fixture.Entry
		want   map[string]string
		absent []string
	}{
		{"marker after a declared subdirectory", []fixture.Entry{
			{Name: "a/b/", Type: tar.TypeDir}, {Name: "a/b/new", Body: "new"}, {Name: "a/.wh..wh..opq"},
		}, map[string]string{"a/b/new": "file new"}, gone},
		{"marker after a subdirectory written into", []fixture.Entry{
			{Name: "a/b/new", Body: "new"}, {Name: "a/.wh..wh..opq"},
		}, map[string]string{"a/b/new": "file new"}, gone},
		{"marker after a deeper entry", []fixture.Entry{
			{Name: "a/b/c/new", Body: "new"}, {Name: "a/.wh..wh..opq"},
		}, map[string]string{"a/b/c/new": "file new"}, []string{"a/b/old", "a/b/c/older", "a/top", "a/l"}},
		{"marker after an entry through a symlink", []fixture.Entry{
			{Name: "a/l/new", Body: "new"}, {Name: "a/.wh..wh..opq"},
		}, map[string]string{"a/b/new": "file new"}, gone},
		{"marker first", []fixture.Entry{
			{Name: "a/.wh..wh..opq"}, {Name: "a/b/", Type: tar.TypeDir}, {Name: "a/b/new", Body: "new"},
		}, map[string]string{"a/b/new": "file new"}, gone},
		{"marker after a declared directory only", []fixture.Entry{
			{Name: "a/b/", Type: tar.TypeDir}, {Name: "a/.wh..wh..opq"},
		}, map[string]string{"a/b": "dir"}, gone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, _, err := apply(t, false, lower, tc.upper)
			if err != nil {
				t.Fatalf("Layer(): %v", err)
			}
			checkTree(t, dir, tc.want, tc.absent)
		})
	}
}

// checkTree compares the tree at dir with want (paths as describeDisk
// puts them) and checks that nothing is at absent.
func checkTree(t *testing.T, dir string, want map[string]string, absent []string) {
	t.Helper()
	got := describeDisk(t, dir)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	for _, p := range absent {
		if g, ok := got[p]; ok {
			t.Errorf("%s: %q, want nothing there", p, g)
		}
	}
}

func TestUnprivilegedSkipsWhatNeedsRoot(t *testing.T) {
	t.Parallel()
	dir, u, err := apply(t, false, []fixture.Entry{
		{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 3},
		{Name: "etc/shadow", Mode: 0o640, GID: 42, Body: "x"},
		{Name: "bin/ping", Mode: 0o755, Body: "x", Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := u.Stats()
	if exists(filepath.Join(dir, "dev/null")) || st.SkippedDevices != 1 {
		t.Errorf("device node: exists=%v skipped=%d, want skipped", exists(filepath.Join(dir, "dev/null")), st.SkippedDevices)
	}
	if os.Geteuid() != 0 && st.SkippedOwners == 0 {
		t.Error("owners not counted as skipped")
	}
	if st.SkippedXattrs != 1 {
		t.Errorf("skipped xattrs: %d, want 1", st.SkippedXattrs)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc/shadow")); fi.Mode().Perm() != 0o640 {
		t.Errorf("etc/shadow mode %v, want 0640", fi.Mode())
	}
}

// TestPrivilegedKeepsOwnersDevicesXattrs needs root, as provisioning does.
func TestPrivilegedKeepsOwnersDevicesXattrs(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root and must run this test")
		}
		t.Skip("needs root: owners, device nodes and security xattrs can only be set by root")
	}
	capv := "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" // cap_net_raw+p
	dir, _, err := apply(t, true, []fixture.Entry{
		{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 3},
		{Name: "dev/sda", Type: tar.TypeBlock, Mode: 0o660, GID: 6, Major: 8, Minor: 0},
		{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
		{Name: "etc/shadow", Mode: 0o640, GID: 42, Body: "x"},
		{Name: "usr/bin/passwd", Mode: 0o4755, UID: 0, Body: "x"},
		{Name: "home/user/", Type: tar.TypeDir, Mode: 0o750, UID: 1000, GID: 1000},
		{Name: "bin/ping", Mode: 0o755, Body: "x", Xattrs: map[string]string{"security.capability": capv, "user.note": "hi"}},
		{Name: "link", Type: tar.TypeSymlink, Linkname: "etc/shadow", UID: 1000, GID: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	check := func(p string, mode uint32, uid, gid uint32, rdev uint64) {
		t.Helper()
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != mode || st.Uid != uid || st.Gid != gid || (rdev != 0 && st.Rdev != rdev) {
			t.Errorf("%s: mode %o uid %d gid %d rdev %d; want %o %d %d %d", p, st.Mode, st.Uid, st.Gid, st.Rdev, mode, uid, gid, rdev)
		}
	}
	check("dev/null", unix.S_IFCHR|0o666, 0, 0, unix.Mkdev(1, 3))
	check("dev/sda", unix.S_IFBLK|0o660, 0, 6, unix.Mkdev(8, 0))
	check("run/fifo", unix.S_IFIFO|0o600, 0, 0, 0)
	check("etc/shadow", unix.S_IFREG|0o640, 0, 42, 0)
	check("usr/bin/passwd", unix.S_IFREG|0o4755, 0, 0, 0)
	check("home/user", unix.S_IFDIR|0o750, 1000, 1000, 0)
	check("link", unix.S_IFLNK|0o777, 1000, 1000, 0)
	buf := make([]byte, 64)
	n, err := unix.Getxattr(filepath.Join(dir, "bin/ping"), "security.capability", buf)
	if err != nil || string(buf[:n]) != capv {
		t.Errorf("security.capability: %q %v", buf[:n], err)
	}
	if n, err := unix.Getxattr(filepath.Join(dir, "bin/ping"), "user.note", buf); err != nil || string(buf[:n]) != "hi" {
		t.Errorf("user.note: %q %v", buf[:n], err)
	}
}

func TestPlainTarLayer(t *testing.T) {
	t.Parallel()
	// gzip layers come through the registry tests; an uncompressed one here.
	dir, _, err := apply(t, false, []fixture.Entry{{Name: "plain", Body: "tar"}})
	if err != nil || !exists(filepath.Join(dir, "plain")) {
		t.Fatalf("plain tar: %v", err)
	}
}

// TestPathsChangedByLaterEntries: a parent reached through a symlink is
// resolved again when the symlink is retargeted, and a directory removed
// by a whiteout (a symlink's target) is not written through a stale handle.
func TestPathsChangedByLaterEntries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		layers [][]fixture.Entry
		want   map[string]string // path -> content ("" for a directory)
		absent []string
	}{
		{"symlink retargeted", [][]fixture.Entry{
			{{Name: "a/", Type: tar.TypeDir}, {Name: "b/", Type: tar.TypeDir}, {Name: "d", Type: tar.TypeSymlink, Linkname: "a"}, {Name: "d/x", Body: "x"}},
			{{Name: "d", Type: tar.TypeSymlink, Linkname: "b"}, {Name: "d/y", Body: "y"}},
		}, map[string]string{"a/x": "x", "b/y": "y"}, []string{"a/y"}},
		{"symlink retargeted within a layer", [][]fixture.Entry{
			{{Name: "a/", Type: tar.TypeDir}, {Name: "b/", Type: tar.TypeDir}, {Name: "d", Type: tar.TypeSymlink, Linkname: "a"}, {Name: "d/x", Body: "x"},
				{Name: "d", Type: tar.TypeSymlink, Linkname: "b"}, {Name: "d/y", Body: "y"}},
		}, map[string]string{"a/x": "x", "b/y": "y"}, []string{"a/y"}},
		{"symlink target whited out and made again", [][]fixture.Entry{
			{{Name: "a/", Type: tar.TypeDir}, {Name: "d", Type: tar.TypeSymlink, Linkname: "a"}, {Name: "d/x", Body: "x"}},
			{{Name: ".wh.a"}, {Name: "a/", Type: tar.TypeDir}, {Name: "d/z", Body: "z"}},
		}, map[string]string{"a/z": "z", "a": ""}, []string{"a/x"}},
		{"absolute symlink retargeted within a layer", [][]fixture.Entry{
			{{Name: "a/", Type: tar.TypeDir}, {Name: "b/", Type: tar.TypeDir}, {Name: "d", Type: tar.TypeSymlink, Linkname: "/a"}, {Name: "d/x", Body: "x"},
				{Name: "d", Type: tar.TypeSymlink, Linkname: "/b"}, {Name: "d/y", Body: "y"}},
		}, map[string]string{"a/x": "x", "b/y": "y"}, []string{"a/y"}},
		{"absolute symlink target whited out and made again", [][]fixture.Entry{
			{{Name: "a/", Type: tar.TypeDir}, {Name: "d", Type: tar.TypeSymlink, Linkname: "/a"}, {Name: "d/x", Body: "x"}},
			{{Name: ".wh.a"}, {Name: "a/", Type: tar.TypeDir}, {Name: "d/z", Body: "z"}},
		}, map[string]string{"a/z": "z", "a": ""}, []string{"a/x"}},
		{"symlink on the way retargeted", [][]fixture.Entry{
			{{Name: "a/c/", Type: tar.TypeDir}, {Name: "b/c/", Type: tar.TypeDir}, {Name: "d", Type: tar.TypeSymlink, Linkname: "/a"},
				{Name: "e", Type: tar.TypeSymlink, Linkname: "/d/c"}, {Name: "e/x", Body: "x"}},
			{{Name: "d", Type: tar.TypeSymlink, Linkname: "b"}, {Name: "e/y", Body: "y"}},
		}, map[string]string{"a/c/x": "x", "b/c/y": "y"}, []string{"a/c/y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, _, err := apply(t, false, tc.layers...)
			if err != nil {
				t.Fatalf("Layer(): %v", err)
			}
			for p, want := range tc.want {
				if want == "" {
					if fi, err := os.Lstat(filepath.Join(dir, p)); err != nil || !fi.IsDir() {
						t.Errorf("%s: %v, want a directory", p, err)
					}
					continue
				}
				if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
					t.Errorf("%s: %q %v, want %q", p, b, err, want)
				}
			}
			for _, p := range tc.absent {
				if exists(filepath.Join(dir, p)) {
					t.Errorf("%s exists, want it absent", p)
				}
			}
		})
	}
}

// TestUnsupportedXattrsAreCountedApart: an xattr the file system refuses
// is counted as unsupported, not as skipped for lack of privilege.
func TestUnsupportedXattrsAreCountedApart(t *testing.T) {
	t.Parallel()
	for _, privileged := range []bool{false, true} {
		if privileged && os.Geteuid() != 0 {
			continue
		}
		_, u, err := apply(t, privileged, []fixture.Entry{{Name: "f", Body: "x", UID: os.Getuid(), GID: os.Getgid(), Xattrs: map[string]string{"vendor.note": "x"}}})
		if err != nil {
			t.Fatal(err)
		}
		if st := u.Stats(); st.UnsupportedXattrs != 1 || st.SkippedXattrs != 0 {
			t.Errorf("privileged=%v: unsupported %d, skipped %d; want 1 and 0", privileged, st.UnsupportedXattrs, st.SkippedXattrs)
		}
	}
}

// openUnpacker returns an Unpacker writing into dir, and what closes it
// and its root.
func openUnpacker(t *testing.T, dir string) (*unpack.Unpacker, func()) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	u := unpack.New(root, unpack.Options{})
	return u, func() { u.Close(); root.Close() }
}

// openUnder lists what this process holds open under dir: files, and
// directories apart (an Unpacker holds some parent directories until it is
// closed).
func openUnder(t *testing.T, dir string) (files, dirs []string) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to list open files: %v", err)
	}
	for _, fd := range fds {
		p, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || !strings.HasPrefix(p, dir+"/") {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			dirs = append(dirs, p)
		} else if err == nil {
			files = append(files, p)
		}
	}
	return files, dirs
}

// Files are closed off the extracting thread; a layer returns, whether it
// succeeded or failed, only once every file it wrote is closed.
func TestLayerReturnsWithItsFilesClosed(t *testing.T) {
	t.Parallel()
	var entries []fixture.Entry
	for i := range 1000 { // more than the closer's queue holds
		entries = append(entries, fixture.Entry{Name: fmt.Sprintf("d%d/f%d", i%7, i), Body: strings.Repeat("x", i)})
	}
	good := fixture.Tar(entries)
	for name, blob := range map[string][]byte{"whole": good, "cut short": good[:len(good)/2]} {
		dir := t.TempDir()
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		u := unpack.New(root, unpack.Options{})
		err = u.Layer(context.Background(), bytes.NewReader(blob))
		if open, _ := openUnder(t, dir); len(open) > 0 {
			t.Errorf("%s layer (err %v): %d files still open after Layer returned, such as %s", name, err, len(open), open[0])
		}
		if (err != nil) != (name == "cut short") {
			t.Errorf("%s layer: err %v", name, err)
		}
		u.Close()
		root.Close()
	}
}
