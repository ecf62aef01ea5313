package cache_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/cache"
)

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// tmpFiles lists the cache's temporary directory.
func tmpFiles(t *testing.T, c *cache.Cache) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(c.Dir(), "tmp"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

// TestPutAndGet: a stored entry is there by its digest, reads back whole
// (verified, and unverified for a caller hashing it itself) with its size,
// and leaves no temporary file. Merely configuring a cache creates nothing;
// the first entry makes its directory, mode 0700.
func TestPutAndGet(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cache")
	c := cache.New(dir)
	data := random(100_000)
	digest := digestOf(data)
	if c.Has(digest) {
		t.Fatal("Has() before any write")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the cache directory exists before any write: %v", err)
	}
	put(t, c, data)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v %v, want mode 0700", fi, err)
	}
	if !c.Has(digest) {
		t.Fatal("Has() after Commit(): false")
	}
	rc, size, err := c.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || rc.Close() != nil || size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Errorf("Open(): %d bytes (size %d), %v; want the %d stored", len(got), size, err, len(data))
	}
	f, err := c.OpenUnverified(digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, data) {
		t.Error("OpenUnverified(): content differs")
	}
	if tmp := tmpFiles(t, c); len(tmp) != 0 {
		t.Errorf("tmp holds %v after a commit", tmp)
	}
	if _, _, err := c.Open(digestOf([]byte("absent"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open() of a missing entry: %v, want fs.ErrNotExist", err)
	}
}

// TestCommitRefusesAMismatch: content that does not have the expected
// digest is discarded with a *MismatchError naming both digests; nothing
// is stored, no temporary file stays. Neither does an aborted entry's.
func TestCommitRefusesAMismatch(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	e, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	e.Write([]byte("tampered"))
	want := digestOf([]byte("published"))
	var mm *cache.MismatchError
	if err := e.Commit(want); !errors.As(err, &mm) || mm.Got != digestOf([]byte("tampered")) || mm.Want != want {
		t.Fatalf("Commit(): %v, want a *MismatchError naming both digests", err)
	}
	if c.Has(want) || c.Has(digestOf([]byte("tampered"))) {
		t.Error("a mismatching entry was stored")
	}
	a, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("half"))
	a.Abort()
	if tmp := tmpFiles(t, c); len(tmp) != 0 {
		t.Errorf("tmp holds %v after a mismatch and an abort", tmp)
	}
}

// TestRestartedWriteStoresOnlyTheRestart: a download that starts over
// (Truncate and Seek to zero) is stored with what came after the restart.
func TestRestartedWriteStoresOnlyTheRestart(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	e, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	e.Write([]byte("a broken first attempt"))
	if err := e.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	e.Write([]byte("whole"))
	if err := e.Commit(digestOf([]byte("whole"))); err != nil {
		t.Fatalf("Commit() after a restart: %v", err)
	}
}

// TestDamageIsJudgedOnlyOnTheCopyThatWasRead: a reader of a damaged entry
// reports it, but does not remove a sound copy another run stored under
// the name meanwhile.
func TestDamageIsJudgedOnlyOnTheCopyThatWasRead(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	data := random(1 << 20)
	digest, p := put(t, c, data)
	if err := os.WriteFile(p, append([]byte("damage"), data[6:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, err := c.Open(digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	put(t, c, data) // another run stores a sound copy
	if _, err := io.Copy(io.Discard, rc); !errors.Is(err, cache.ErrCorrupt) {
		t.Errorf("reading the damaged copy: %v, want ErrCorrupt", err)
	}
	rc.Close()
	if !c.Has(digest) {
		t.Error("the sound copy stored meanwhile was removed")
	}
}
