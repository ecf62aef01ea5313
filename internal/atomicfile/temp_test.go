package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveUnheldSparesLiveFiles: a temporary file being written (open,
// so locked) survives cleanup; once its writer is gone (closed, as when a
// process dies) it is a leftover and cleanup removes it. A file renamed
// into place before closing is never seen as a leftover.
func TestRemoveUnheldSparesLiveFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	live, name, err := createTemp(root, ".", "x-")
	if err != nil {
		t.Fatal(err)
	}
	if RemoveUnheld(root, name) {
		t.Fatalf("RemoveUnheld(%s) removed a file that is still being written", name)
	}
	if _, err := live.Write([]byte("data")); err != nil {
		t.Fatalf("write after cleanup: %v", err)
	}
	if err := root.Rename(name, "final"); err != nil {
		t.Fatalf("rename after another's cleanup: %v", err)
	}
	live.Close()

	dead, name, err := createTemp(root, ".", "x-")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close() // its writer died
	if !RemoveUnheld(root, name) {
		t.Errorf("RemoveUnheld(%s) kept a file nobody holds", name)
	}
	// A file from an older version, never locked, is a leftover too.
	if err := os.WriteFile(filepath.Join(dir, "x-old"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !RemoveUnheld(root, "x-old") {
		t.Error("RemoveUnheld(x-old) kept an unlocked leftover")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "final" {
		t.Errorf("directory holds %v, want only final", entries)
	}
}
