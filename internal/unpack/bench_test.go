package unpack_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/unpack"
)

// BenchmarkLayer unpacks a real gzipped layer, given by
// ROOTFSCTL_BENCH_LAYER (make bench uses the e2e test's debootstrap
// rootfs). Each iteration extracts into a fresh directory; the trees are
// removed only after the timed loop, because deleting many files just
// before creating many slows this disk down.
func BenchmarkLayer(b *testing.B) {
	layer := os.Getenv("ROOTFSCTL_BENCH_LAYER")
	if layer == "" {
		b.Skip("set ROOTFSCTL_BENCH_LAYER to a gzipped layer (make bench does)")
	}
	fi, err := os.Stat(layer)
	if err != nil {
		b.Fatal(err)
	}
	base := b.TempDir()
	b.SetBytes(fi.Size())
	i := 0
	for b.Loop() {
		dir := filepath.Join(base, fmt.Sprint(i))
		i++
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(layer)
		if err != nil {
			b.Fatal(err)
		}
		u := unpack.New(root, unpack.Options{Privileged: os.Geteuid() == 0})
		if err := u.Layer(context.Background(), f); err != nil {
			b.Fatal(err)
		}
		u.Close()
		f.Close()
		root.Close()
	}
}
