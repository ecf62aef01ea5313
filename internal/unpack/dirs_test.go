package unpack_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// An image's number of directories does not decide how many handles the
// unpack keeps open (each one would count against the limit on open
// files): 3,000 directories, each with a file in it, all extracted, with
// at most a few hundred directory handles open between layers.
func TestDirectoryHandlesAreBounded(t *testing.T) {
	t.Parallel()
	const dirs = 3000
	var entries []fixture.Entry
	for i := range dirs {
		entries = append(entries, fixture.Entry{Name: fmt.Sprintf("a/d%d/f", i), Body: fmt.Sprint(i)})
	}
	dir := t.TempDir()
	u, done := openUnpacker(t, dir)
	defer done()
	if err := u.Layer(context.Background(), bytes.NewReader(fixture.Tar(entries))); err != nil {
		t.Fatal(err)
	}
	if _, open := openUnder(t, dir); len(open) > 600 {
		t.Errorf("%d directory handles open after a layer of %d directories, want a bound (at most 600)", len(open), dirs)
	}
	for i := range dirs {
		if b, err := os.ReadFile(filepath.Join(dir, "a", fmt.Sprintf("d%d", i), "f")); err != nil || string(b) != fmt.Sprint(i) {
			t.Fatalf("d%d/f: %q, %v", i, b, err)
		}
	}
}
