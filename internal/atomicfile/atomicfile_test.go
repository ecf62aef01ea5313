package atomicfile_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

func openRoot(t *testing.T) (string, *os.Root) {
	t.Helper()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return dir, root
}

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

// TestCommitReplacesWholeOrNotAtAll: until Commit the previous file is in
// place; Commit gives the new content its exact mode (whatever the umask)
// and leaves no temporary file; Abort leaves the previous file.
func TestCommitReplacesWholeOrNotAtAll(t *testing.T) {
	t.Parallel()
	dir, root := openRoot(t)
	if err := atomicfile.WriteFile(root, "etc/app.conf", strings.NewReader("old\n"), 0o644, "s1"); err != nil {
		t.Fatal(err)
	}
	f, err := atomicfile.Create(root, "etc/app.conf", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/app.conf")); string(b) != "old\n" {
		t.Errorf("before Commit(): %q, want the previous content", b)
	}
	if err := f.Commit(0o750 | fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "etc/app.conf"))
	if err != nil || fi.Mode()&(fs.ModePerm|fs.ModeSetuid) != 0o750|fs.ModeSetuid {
		t.Errorf("after Commit(setuid 0750): %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/app.conf")); string(b) != "new\n" {
		t.Errorf("after Commit(): %q, want the new content", b)
	}
	a, err := atomicfile.Create(root, "etc/app.conf", "s1")
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("half"))
	a.Abort()
	if got := entries(t, filepath.Join(dir, "etc")); len(got) != 1 || got[0] != "app.conf" {
		t.Errorf("etc holds %v, want only app.conf (no temporary file)", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/app.conf")); string(b) != "new\n" {
		t.Errorf("after Abort(): %q, want the committed content", b)
	}
}

// TestCommitRefusesADirectoryInTheWay: a directory at the name is not
// replaced, and the temporary file goes.
func TestCommitRefusesADirectoryInTheWay(t *testing.T) {
	t.Parallel()
	dir, root := openRoot(t)
	if err := os.MkdirAll(filepath.Join(dir, "bin/kubelet/x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := atomicfile.WriteFile(root, "bin/kubelet", strings.NewReader("x"), 0o755, "s1")
	if err == nil || !strings.Contains(err.Error(), "a directory is in the way") {
		t.Errorf("WriteFile() over a directory: %v, want a refusal", err)
	}
	if got := entries(t, filepath.Join(dir, "bin")); len(got) != 1 {
		t.Errorf("bin holds %v, want only the directory", got)
	}
}

// TestTruncateStartsOver: a download that restarts from the beginning
// leaves only what was written after the restart, in the file and its
// digest.
func TestTruncateStartsOver(t *testing.T) {
	t.Parallel()
	dir, root := openRoot(t)
	f, err := atomicfile.Create(root, "blob", "s1")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("garbage"))
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	want := "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" // sha256("x")
	if f.Digest() != want {
		t.Errorf("Digest() after a restart: %s, want %s", f.Digest(), want)
	}
	if err := f.Truncate(3); err == nil {
		t.Error("Truncate(3): want an error; only a restart is allowed")
	}
	if err := f.Commit(0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "blob")); string(b) != "x" {
		t.Errorf("content: %q, want x", b)
	}
}

// TestLinkHasOneWinner: of writers racing to Link one name, exactly one
// succeeds; the others see fs.ErrExist, and no temporary file is left.
func TestLinkHasOneWinner(t *testing.T) {
	t.Parallel()
	dir, root := openRoot(t)
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := atomicfile.Create(root, "claims/p.json", "s")
			if err != nil {
				errs[i] = err
				return
			}
			f.Write([]byte{byte('a' + i)})
			errs[i] = f.Link()
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("Link(): %v, want success or fs.ErrExist", err)
		}
	}
	if won != 1 {
		t.Errorf("%d writers linked the name, want 1", won)
	}
	if got := entries(t, filepath.Join(dir, "claims")); len(got) != 1 {
		t.Errorf("claims holds %v, want only the claim", got)
	}
}

// TestSymlinkReplacesTheEntry: a file at the name becomes the link, and
// the link is never followed to write.
func TestSymlinkReplacesTheEntry(t *testing.T) {
	t.Parallel()
	dir, root := openRoot(t)
	if err := atomicfile.WriteFile(root, "unit.service", strings.NewReader("[Unit]\n"), 0o644, "s"); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Symlink(root, "/dev/null", "unit.service", "s"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "unit.service")); err != nil || target != "/dev/null" {
		t.Errorf("unit.service: %q %v, want a link to /dev/null", target, err)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v, want only the link", got)
	}
}

// TestRemoveTempsTakesOnlyTheOwnersLeftovers: an owner's cleanup removes
// its own dead temporary files, never another owner's, nor a file one of
// its own writers still holds.
func TestRemoveTempsTakesOnlyTheOwnersLeftovers(t *testing.T) {
	t.Parallel()
	dir, root := openRoot(t)
	dead := []string{atomicfile.TempPrefix + "s1-app.conf-000000000000", atomicfile.TempPrefix + "s2-app.conf-000000000000"}
	for _, n := range dead {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	live, err := atomicfile.Create(root, "app.conf", "s1")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	atomicfile.RemoveTemps(root, ".", "s1")
	got := entries(t, dir)
	if len(got) != 2 || !strings.Contains(strings.Join(got, " "), dead[1]) {
		t.Errorf("after s1's cleanup: %v, want s2's leftover and s1's live file", got)
	}
	if err := live.Commit(0o644); err != nil {
		t.Errorf("Commit() after another's cleanup: %v", err)
	}
}

// TestCopyKnown: a file filled by CopyKnown holds the source's bytes and
// says the digest it was given.
func TestCopyKnown(t *testing.T) {
	t.Parallel()
	dir, root := openRoot(t)
	data := strings.Repeat("rootfsctl ", 4000000) // 40 MB: several chunks
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f, err := atomicfile.Create(root, "sub/dst", "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CopyKnown(context.Background(), in, "given"); err != nil {
		t.Fatal(err)
	}
	if f.Digest() != "given" {
		t.Errorf("Digest() = %q, want the given digest", f.Digest())
	}
	if err := f.Commit(0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "sub/dst")); string(got) != data {
		t.Errorf("copied %d bytes, want the source's %d", len(got), len(data))
	}
}
