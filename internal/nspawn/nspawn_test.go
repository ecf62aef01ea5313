package nspawn_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/nspawn"
)

// TestSettingsAreWrittenOnlyWhenTheyDiffer: the rendered files name the
// machine and its binds; Stale says which are missing or differ; Write
// makes them right and leaves current ones alone; Tidy removes only dead
// temporary files of its own.
func TestSettingsAreWrittenOnlyWhenTheyDiffer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := nspawn.Settings{Machine: "node1", BindReadOnly: []string{"/lib/modules"}, HostDevices: []string{"/dev/kmsg"},
		NspawnFile: filepath.Join(dir, "nspawn/node1.nspawn"), OverrideFile: filepath.Join(dir, "system/override.conf")}
	files, err := s.Render()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != s.NspawnFile || !strings.Contains(string(files[0].Content), "BindReadOnly=/lib/modules") ||
		!strings.Contains(string(files[0].Content), "Bind=/dev/kmsg") || files[1].Path != s.OverrideFile {
		t.Fatalf("Render(): %+v", files)
	}
	if stale, err := nspawn.Stale(files); err != nil || len(stale) != 2 || !strings.HasSuffix(stale[0], " is missing") {
		t.Errorf("Stale() before writing: %v %v", stale, err)
	}
	if err := nspawn.Write(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	if stale, err := nspawn.Stale(files); err != nil || len(stale) != 0 {
		t.Errorf("Stale() after Write(): %v %v", stale, err)
	}
	before, _ := os.Stat(s.NspawnFile)
	if err := os.WriteFile(s.OverrideFile, []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if stale, _ := nspawn.Stale(files); len(stale) != 1 || stale[0] != s.OverrideFile+" differs" {
		t.Errorf("Stale() after an edit: %v", stale)
	}
	if err := nspawn.Write(context.Background(), files); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(s.NspawnFile); !os.SameFile(before, after) {
		t.Error("Write() replaced a current file")
	}
	dead := filepath.Join(dir, "nspawn", atomicfile.TempPrefix+"workspace-node1.nspawn-000000000000")
	other := filepath.Join(dir, "nspawn", atomicfile.TempPrefix+"file-x-000000000000")
	for _, p := range []string{dead, other} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.Tidy()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("Tidy() left a dead temporary file: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Tidy() removed another owner's file: %v", err)
	}
}
