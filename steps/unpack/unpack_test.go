package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/steps/fixture"
	"github.com/rootfsctl/rootfsctl/steps/unpack"
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

// TestHostileLayers: no entry, link or symlink can reach outside the target.
func TestHostileLayers(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		layer   []fixture.Entry
		wantErr string
	}{
		{"dotdot entry", []fixture.Entry{{Name: "../escape", Body: "x"}}, ".. in name"},
		{"dotdot inside", []fixture.Entry{{Name: "a/../../escape", Body: "x"}}, ".. in name"},
		{"absolute symlink dir", []fixture.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: outside},
			{Name: "evil/victim", Body: "pwned"},
		}, "escapes"},
		{"relative symlink dir", []fixture.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: "../../../../../../../../" + outside},
			{Name: "evil/victim", Body: "pwned"},
		}, "escapes"},
		{"hard link out", []fixture.Entry{{Name: "h", Type: tar.TypeLink, Linkname: "../../" + victim}}, "target outside the rootfs"},
		{"hard link through symlink", []fixture.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: outside},
			{Name: "h", Type: tar.TypeLink, Linkname: "evil/victim"},
		}, "escapes"},
		{"whiteout through symlink", []fixture.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: outside},
			{Name: "evil/.wh.victim"},
		}, "escapes"},
		{"opaque through symlink", []fixture.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: outside},
			{Name: "evil/.wh..wh..opq"},
		}, "escapes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := apply(t, false, tc.layer)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
			if b, _ := os.ReadFile(victim); string(b) != "untouched" {
				t.Fatalf("the file outside was changed: %q", b)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 1 {
				t.Fatalf("something was created outside: %v", entries)
			}
		})
	}
	// An absolute entry name is relative to the rootfs, as in every runtime.
	dir, _, err := apply(t, false, []fixture.Entry{{Name: outside + "/victim", Body: "inside"}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, outside, "victim")); string(b) != "inside" {
		t.Errorf("absolute entry not placed inside the rootfs: %q", b)
	}
}

func TestUnprivilegedSkipsWhatNeedsRoot(t *testing.T) {
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
