package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/cache"
)

// aged stores n bytes as an entry last used age ago.
func aged(t *testing.T, c *cache.Cache, seed, n int, age time.Duration) string {
	t.Helper()
	data := random(n)
	data[0] = byte(seed) // a digest of its own
	digest, p := put(t, c, data)
	when := time.Now().Add(-age)
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
	return digest
}

// TestPruneRemovesLeastRecentlyUsedFirst: a prune to a size removes the
// entries used longest ago until the rest fit, counts what it removed,
// and leaves the remembered checksums; reading an entry counts as using it.
func TestPruneRemovesLeastRecentlyUsedFirst(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	oldest := aged(t, c, 1, 1000, 3*time.Hour)
	readLately := aged(t, c, 2, 1000, 2*time.Hour)
	newest := aged(t, c, 3, 1000, time.Hour)
	if err := c.PutSum("https://example.org/x.sha256#x", digestOf([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	rc, _, err := c.Open(readLately)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	removed, err := c.Prune(context.Background(), 2000)
	if err != nil {
		t.Fatal(err)
	}
	if removed != (cache.Usage{Entries: 1, Bytes: 1000}) {
		t.Errorf("Prune(2000): removed %+v, want one entry of 1000 bytes", removed)
	}
	for digest, want := range map[string]bool{oldest: false, readLately: true, newest: true} {
		if c.Has(digest) != want {
			t.Errorf("after Prune(2000): Has(%s...) = %v, want %v", digest[:8], !want, want)
		}
	}
	if u, err := c.Usage(); err != nil || u != (cache.Usage{Entries: 2, Bytes: 2000}) {
		t.Errorf("Usage(): %+v %v, want 2 entries of 2000 bytes", u, err)
	}
	if _, ok := c.Sum("https://example.org/x.sha256#x"); !ok {
		t.Error("a prune to a size forgot a remembered checksum")
	}
}

// TestPruneHonoursPins: an entry a live run pinned (by Pin, or stored
// pinned by CommitPinned) survives any prune, even to zero, and younger
// entries go in its place; once released it is pruned like any other.
func TestPruneHonoursPins(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	pinnedOld := aged(t, c, 1, 1000, 3*time.Hour)
	young := aged(t, c, 2, 1000, time.Hour)
	pin, err := c.Pin(pinnedOld)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	data := random(500)
	e.Write(data)
	stored, err := e.CommitPinned(digestOf(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prune(context.Background(), 1000); err != nil {
		t.Fatal(err)
	}
	if !c.Has(pinnedOld) || c.Has(young) {
		t.Errorf("Prune(1000) with the oldest pinned: pinned kept %v, younger kept %v; want the younger one removed instead", c.Has(pinnedOld), c.Has(young))
	}
	if _, err := c.Prune(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if !c.Has(pinnedOld) || !c.Has(digestOf(data)) {
		t.Error("Prune(0) removed a pinned entry")
	}
	pin.Release()
	stored.Release()
	if _, err := c.Prune(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if c.Has(pinnedOld) || c.Has(digestOf(data)) {
		t.Error("released entries survived Prune(0)")
	}
	if _, err := c.Pin(pinnedOld); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Pin() of a pruned entry: %v, want fs.ErrNotExist", err)
	}
}

// TestPruneAllForgetsEverything: a prune to zero also drops the remembered
// checksums and archive indexes.
func TestPruneAllForgetsEverything(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	put(t, c, random(10))
	if err := c.PutSum("k", digestOf([]byte("k"))); err != nil {
		t.Fatal(err)
	}
	if err := c.PutIndex("members", []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prune(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Sum("k"); ok {
		t.Error("Sum() after Prune(0)")
	}
	if _, ok := c.Index("members"); ok {
		t.Error("Index() after Prune(0)")
	}
	if u, _ := c.Usage(); u.Entries != 0 {
		t.Errorf("Usage() after Prune(0): %+v", u)
	}
}

// TestCleanupSparesLiveTemporaryFiles: CleanTemp (and every prune) removes
// what killed runs left in tmp/, never the file of an entry being written.
func TestCleanupSparesLiveTemporaryFiles(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	live, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(c.Dir(), "tmp", "entry-killed")
	if err := os.WriteFile(dead, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.CleanTemp(context.Background())
	if tmp := tmpFiles(t, c); len(tmp) != 1 {
		t.Errorf("tmp after CleanTemp(): %v, want only the live entry's file", tmp)
	}
	if err := os.WriteFile(dead, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prune(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
	if tmp := tmpFiles(t, c); len(tmp) != 1 {
		t.Errorf("tmp after Prune(): %v, want only the live entry's file", tmp)
	}
	data := []byte("written while others cleaned up")
	live.Write(data)
	if err := live.Commit(digestOf(data)); err != nil {
		t.Errorf("Commit() of the live entry: %v", err)
	}
}

// TestPruneStopsWhenCancelled: a cancelled prune returns the context's
// error; what it left is still a valid cache.
func TestPruneStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	digest, _ := put(t, c, random(100))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Prune(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Prune() cancelled: %v, want context.Canceled", err)
	}
	if rc, _, err := c.Open(digest); err != nil {
		t.Errorf("Open() after a cancelled prune: %v", err)
	} else {
		rc.Close()
	}
}

// TestPruneOfAMissingCacheIsNothing: a cache directory that was never
// created prunes to nothing, without an error.
func TestPruneOfAMissingCacheIsNothing(t *testing.T) {
	t.Parallel()
	c := cache.New(filepath.Join(t.TempDir(), "never-created"))
	if removed, err := c.Prune(context.Background(), 0); err != nil || removed != (cache.Usage{}) {
		t.Errorf("Prune of a missing cache: %+v, %v", removed, err)
	}
}

// TestCleanTempStopsWhenCancelled: a cancelled cleanup removes nothing
// more (an interrupt during an apply's before-run hook is prompt).
func TestCleanTempStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	if err := os.MkdirAll(filepath.Join(c.Dir(), "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := os.WriteFile(filepath.Join(c.Dir(), "tmp", fmt.Sprint("dead-", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.CleanTemp(ctx)
	if left, _ := os.ReadDir(filepath.Join(c.Dir(), "tmp")); len(left) != 50 {
		t.Errorf("a cancelled CleanTemp left %d of 50 files", len(left))
	}
	c.CleanTemp(context.Background())
	if left, _ := os.ReadDir(filepath.Join(c.Dir(), "tmp")); len(left) != 0 {
		t.Errorf("CleanTemp left %d dead files", len(left))
	}
}
