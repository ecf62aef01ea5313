package cache_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// put stores data as an entry and returns its digest and path.
func put(t *testing.T, c *cache.Cache, data []byte) (string, string) {
	t.Helper()
	digest, err := fixture.CacheEntry(c, data)
	if err != nil {
		t.Fatal(err)
	}
	return digest, filepath.Join(c.Dir(), "sha256", digest)
}

func random(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestReaderDropsDamagedEntryOnAnyEarlyEnd: a reader that stops long before
// the end of an entry (its consumer failed on the damage, or was
// cancelled) still learns whether the entry is intact when it closes: a
// damaged entry is reported and removed, an intact one kept.
func TestReaderDropsDamagedEntryOnAnyEarlyEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		damage  bool
		readTo  int // bytes read before Close
		wantErr bool
	}{
		{"damaged, closed early", true, 4096, true},
		{"damaged, closed before any read", true, 0, true},
		{"intact, closed early", false, 4096, false},
		{"damaged, read to the end", true, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cache.New(t.TempDir())
			data := random(8 << 20)
			digest, p := put(t, c, data)
			if tc.damage {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt([]byte("damage"), 100)
				f.Close()
			}
			rc, _, err := c.Open(digest)
			if err != nil {
				t.Fatal(err)
			}
			var readErr error
			if tc.readTo < 0 {
				_, readErr = io.Copy(io.Discard, rc)
			} else {
				_, readErr = io.ReadFull(rc, make([]byte, tc.readTo))
			}
			closeErr := rc.Close()
			got := errors.Is(readErr, cache.ErrCorrupt) || errors.Is(closeErr, cache.ErrCorrupt)
			if got != tc.wantErr {
				t.Errorf("read: %v, close: %v; want ErrCorrupt reported: %v", readErr, closeErr, tc.wantErr)
			}
			if c.Has(digest) == tc.wantErr {
				t.Errorf("Has() after close: %v, want the entry removed only when damaged", c.Has(digest))
			}
		})
	}
}

// TestSymlinkEntryIsNeverFollowed: an entry that is a symlink (not
// something the cache writes) is not an entry: it is not reported, not
// read through, and its target's times are left alone.
func TestSymlinkEntryIsNeverFollowed(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	data := []byte("content")
	digest, p := put(t, c, data)
	target := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(target, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(target, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if c.Has(digest) {
		t.Error("Has() reports a symlink as an entry")
	}
	if rc, _, err := c.Open(digest); err == nil {
		rc.Close()
		t.Error("Open() read through a symlink entry")
	}
	if f, err := c.OpenUnverified(digest); err == nil {
		f.Close()
		t.Error("OpenUnverified() read through a symlink entry")
	}
	if fi, err := os.Stat(target); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("symlink target's time: %v %v, want it untouched (%v)", fi.ModTime(), err, old)
	}
}

// TestSmallDocumentsAreBounded: a remembered checksum or index that grew
// beyond any size rootfsctl writes is not read whole.
func TestSmallDocumentsAreBounded(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	if err := c.PutIndex("k", []byte("[]")); err != nil {
		t.Fatal(err)
	}
	des, _ := os.ReadDir(filepath.Join(c.Dir(), "sums"))
	if len(des) != 1 {
		t.Fatalf("sums holds %v", des)
	}
	// /dev/zero never ends: a read without a bound would not either.
	p := filepath.Join(c.Dir(), "sums", des[0].Name())
	os.Remove(p)
	if err := os.Symlink("/dev/zero", p); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Index("k"); ok {
		t.Error("Index() accepted an endless document")
	}
}

// TestPlantedSymlinksCannotReachOutside: a cache whose sha256/ or sums/ is
// a symlink to another directory is refused; prune and info touch nothing
// outside the cache.
func TestPlantedSymlinksCannotReachOutside(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"sha256", "sums", "tmp"} {
		t.Run(sub, func(t *testing.T) {
			t.Parallel()
			dir, victim := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(victim, "important.conf"), []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"sha256", "sums", "tmp"} {
				if s == sub {
					if err := os.Symlink(victim, filepath.Join(dir, s)); err != nil {
						t.Fatal(err)
					}
				} else if err := os.Mkdir(filepath.Join(dir, s), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			c := cache.New(dir)
			if _, err := c.Prune(context.Background(), 0); err == nil {
				t.Error("Prune() used a cache with a symlinked subdirectory")
			}
			if _, err := c.Usage(); err == nil {
				t.Error("Usage() used a cache with a symlinked subdirectory")
			}
			if _, err := c.Create(); err == nil {
				t.Error("Create() used a cache with a symlinked subdirectory")
			}
			c.CleanTemp(context.Background())
			if b, err := os.ReadFile(filepath.Join(victim, "important.conf")); err != nil || string(b) != "keep" {
				t.Errorf("a file outside the cache was touched: %q %v", b, err)
			}
		})
	}
}

// TestDirectoryInPlaceOfAnEntry: a directory where an entry belongs does
// not break storing the entry, and prune removes such junk.
func TestDirectoryInPlaceOfAnEntry(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	data := random(1000)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if err := os.MkdirAll(filepath.Join(c.Dir(), "sha256", digest, "junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	if c.Has(digest) {
		t.Error("Has() takes a directory for an entry")
	}
	put(t, c, data)
	if !c.Has(digest) {
		t.Error("the entry was not stored over the directory")
	}
	junk := filepath.Join(c.Dir(), "sha256", "0000000000000000000000000000000000000000000000000000000000000000")
	if err := os.MkdirAll(filepath.Join(junk, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prune(context.Background(), 1<<30); err != nil {
		t.Fatalf("Prune(): %v", err)
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Errorf("prune left a directory among the entries: %v", err)
	}
	if !c.Has(digest) {
		t.Error("prune removed a real entry within the budget")
	}
}
