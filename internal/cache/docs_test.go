package cache_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/cache"
)

// TestChecksumsAreRememberedAndForgotten: a remembered checksum comes back
// by its key until forgotten; a document under its name that is not a
// digest (damage, or not rootfsctl's) is not taken for one.
func TestChecksumsAreRememberedAndForgotten(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	const key = "https://dl.example/v1/kubelet.sha256#kubelet"
	want := digestOf([]byte("kubelet"))
	if _, ok := c.Sum(key); ok {
		t.Fatal("Sum() before PutSum()")
	}
	if err := c.PutSum(key, want); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Sum(key); !ok || got != want {
		t.Errorf("Sum(): %q %v, want %q", got, ok, want)
	}
	if _, ok := c.Sum(key + "-other"); ok {
		t.Error("Sum() of another key found one")
	}
	c.ForgetSum(key)
	if _, ok := c.Sum(key); ok {
		t.Error("Sum() after ForgetSum()")
	}
	if err := c.PutSum(key, want); err != nil {
		t.Fatal(err)
	}
	des, _ := os.ReadDir(filepath.Join(c.Dir(), "sums"))
	if len(des) != 1 {
		t.Fatalf("sums holds %v", des)
	}
	if err := os.WriteFile(filepath.Join(c.Dir(), "sums", des[0].Name()), []byte("<html>"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Sum(key); ok {
		t.Errorf("Sum() of a damaged document: %q, want none", got)
	}
}

// TestIndexRoundTrip: an index document comes back as stored, by its key.
func TestIndexRoundTrip(t *testing.T) {
	t.Parallel()
	c := cache.New(t.TempDir())
	doc := []byte(`[{"name":"bin/ctr"}]`)
	if err := c.PutIndex("members:bin/*:abc", doc); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.Index("members:bin/*:abc"); !ok || string(got) != string(doc) {
		t.Errorf("Index(): %q %v, want %q", got, ok, doc)
	}
	if _, ok := c.Index("members:bin/*:other"); ok {
		t.Error("Index() of another key found one")
	}
}
