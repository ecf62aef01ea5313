package machine_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/machine"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// entries lists dir's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

// writing fills a rootfs with one file and an image's forged record.
func writing(content string) func(root *os.Root) (machine.Record, error) {
	return func(root *os.Root) (machine.Record, error) {
		if err := root.MkdirAll("var/lib/rootfsctl", 0o755); err != nil {
			return machine.Record{}, err
		}
		if err := root.WriteFile("var/lib/rootfsctl/step-kube.json", []byte("forged"), 0o644); err != nil {
			return machine.Record{}, err
		}
		return machine.Record{Image: "reg/node:" + content, Digest: "sha256:" + content}, root.WriteFile("etc-version", []byte(content), 0o644)
	}
}

// TestBuildReplacesWholeOrNotAtAll: a rootfs appears by a rename once
// complete, with the record and only rootfsctl's state; missing parents
// are made 0700; a failed build leaves the machine as it was and nothing
// beside it; without Replace an existing rootfs is refused, with it the
// old one goes.
func TestBuildReplacesWholeOrNotAtAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "machines", "node1")
	if err := machine.Build(ctx, dir, machine.BuildOptions{}, writing("v1")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(dir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created parent: %v %v, want mode 0700", fi, err)
	}
	rec, why, err := machine.ReadRecord(dir)
	if err != nil || rec == nil || rec.Digest != "sha256:v1" {
		t.Fatalf("ReadRecord(): %+v %q %v", rec, why, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "var/lib/rootfsctl/step-kube.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the image's forged record survived: %v", err)
	}
	failing := func(root *os.Root) (machine.Record, error) {
		root.WriteFile("etc-version", []byte("half"), 0o644)
		return machine.Record{}, errors.New("layer 2 is broken")
	}
	if err := machine.Build(ctx, dir, machine.BuildOptions{Replace: true}, failing); err == nil {
		t.Fatal("Build() with a failing fill: nil error")
	}
	if err := machine.Build(ctx, dir, machine.BuildOptions{}, writing("v2")); err == nil {
		t.Error("Build() without Replace over a rootfs: nil error")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc-version")); string(b) != "v1" {
		t.Errorf("after failed builds: etc-version %q, want v1", b)
	}
	if err := machine.Build(ctx, dir, machine.BuildOptions{Replace: true}, writing("v2")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc-version")); string(b) != "v2" {
		t.Errorf("after a replacing build: etc-version %q, want v2", b)
	}
	if got := entries(t, filepath.Dir(dir)); len(got) != 1 {
		t.Errorf("machines holds %v, want only node1 (no staging or old rootfs)", got)
	}
}

// TestLeftoversAreNeverAccepted: staging and old directories of
// interrupted builds are removed; a directory without a record is not
// rootfsctl's.
func TestLeftoversAreNeverAccepted(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "node1")
	for _, d := range []string{".node1.rootfsctl-staging-1/etc", ".node1.rootfsctl-old-2/etc", ".node2.rootfsctl-staging-3", "node1/etc"} {
		if err := os.MkdirAll(filepath.Join(parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	machine.Tidy(context.Background(), dir)
	if got := strings.Join(entries(t, parent), " "); got != ".node2.rootfsctl-staging-3 node1" {
		t.Errorf("after Tidy(): %s, want node1 and another machine's staging directory", got)
	}
	if rec, why, err := machine.ReadRecord(dir); rec != nil || err != nil || !strings.Contains(why, "did not unpack") {
		t.Errorf("ReadRecord() without a record: %+v %q %v", rec, why, err)
	}
	if empty, err := machine.Empty(dir); empty || err != nil {
		t.Errorf("Empty(%s): %v %v", dir, empty, err)
	}
	if _, err := machine.Empty(filepath.Join(parent, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Empty() of a missing directory: %v, want fs.ErrNotExist", err)
	}
}

// TestFilesAreWrittenOnlyWhenTheyDiffer: Stale says which files lack their
// content and why; Write makes them right, leaving a current file alone;
// a file that escapes the machine through a symlink is reported, never
// followed.
func TestFilesAreWrittenOnlyWhenTheyDiffer(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	files := machine.Files{"etc/hostname": []byte("node1\n"), "etc/motd": []byte("hi\n")}
	if got := strings.Join(files.Stale(root), "; "); got != "etc/hostname is missing; etc/motd is missing" {
		t.Errorf("Stale() of an empty machine: %q", got)
	}
	if err := files.Write(root, "os"); err != nil {
		t.Fatal(err)
	}
	if stale := files.Stale(root); len(stale) != 0 {
		t.Errorf("Stale() after Write(): %v", stale)
	}
	before, _ := os.Stat(filepath.Join(dir, "etc/hostname"))
	if err := os.WriteFile(filepath.Join(dir, "etc/motd"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(files.Stale(root), "; "); got != "etc/motd differs" {
		t.Errorf("Stale() with motd changed: %q", got)
	}
	if err := files.Write(root, "os"); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(filepath.Join(dir, "etc/hostname")); !os.SameFile(before, after) {
		t.Error("Write() replaced a current file")
	}
	if err := os.Remove(filepath.Join(dir, "etc/hostname")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "hostname"), filepath.Join(dir, "etc/hostname")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(files.Stale(root), "; "); !strings.Contains(got, "etc/hostname is not a regular file") {
		t.Errorf("Stale() with an escaping symlink: %q", got)
	}
	if got := entries(t, outside); len(got) != 0 {
		t.Errorf("written outside the machine: %v", got)
	}
}

// TestReadsAreBounded: a file larger than the limit, or a fifo, is
// refused; a missing machine directory is a permanent error.
func TestReadsAreBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 11), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := machine.ReadFile(nil, filepath.Join(dir, "big"), 10); !errors.Is(err, machine.ErrTooLarge) {
		t.Errorf("ReadFile() past the limit: %v, want ErrTooLarge", err)
	}
	if b, err := machine.ReadFile(nil, filepath.Join(dir, "big"), 11); err != nil || len(b) != 11 {
		t.Errorf("ReadFile() at the limit: %d bytes, %v", len(b), err)
	}
	if _, err := machine.ReadFile(nil, filepath.Join(dir, "fifo"), 10); !errors.Is(err, machine.ErrNotRegular) {
		t.Errorf("ReadFile() of a fifo: %v, want ErrNotRegular", err)
	}
	if _, err := machine.Open(filepath.Join(dir, "missing")); !retry.IsPermanent(err) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open() of a missing machine: %v, want a permanent fs.ErrNotExist", err)
	}
}

// TestGuardFindsTheDirectoryThatStopsOthers: the first directory from /
// that gives others no search permission guards what is below it; one
// still to be created (0700) does too; with none, nothing does.
func TestGuardFindsTheDirectoryThatStopsOthers(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	// The test's own temporary directories (0700) are opened up; above
	// them, the system's temporary directory must let others pass.
	tmp := filepath.Clean(os.TempDir())
	for d := base; d != tmp && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if guard, _ := machine.Guard(tmp); guard != "" {
		t.Skipf("%s already stops other users; the test needs a temporary directory they can pass", guard)
	}
	if guard, missing := machine.Guard(base); guard != "" || missing {
		t.Errorf("Guard(%s) with every directory open: %q %v, want none", base, guard, missing)
	}
	closed := filepath.Join(base, "machines")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	if guard, missing := machine.Guard(filepath.Join(closed, "x")); guard != closed || missing {
		t.Errorf("Guard() below a 0700 directory: %q %v, want %s", guard, missing, closed)
	}
	if guard, missing := machine.Guard(filepath.Join(base, "new", "machines")); guard != filepath.Join(base, "new") || !missing {
		t.Errorf("Guard() below a missing directory: %q %v, want it, missing", guard, missing)
	}
}
