package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// gen-docs writes a man page for every command users can run (and none for
// hidden ones), each a roff page with the command's own help, and the
// bash, zsh and fish completions; twice the same bytes, so packages are
// reproducible.
func TestGenDocs(t *testing.T) {
	dirs := [2]string{t.TempDir(), t.TempDir()}
	for _, d := range dirs {
		if code, _, errs := cli(t, context.Background(), "gen-docs", "--date", "2026-03-04T05:06:07Z", d); code != exitOK {
			t.Fatalf("gen-docs: exit %d: %s", code, errs)
		}
	}
	a := &app{stdout: io.Discard, stderr: io.Discard}
	root := a.rootCommand()
	var want []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root || c.IsAdditionalHelpTopicCommand() {
			return
		}
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1.gz")
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	got, _ := filepath.Glob(filepath.Join(dirs[0], "man", "*.1.gz"))
	if len(got) != len(want) {
		t.Errorf("%d man pages, want %d: %v", len(got), len(want), want)
	}
	for _, name := range want {
		data, err := os.ReadFile(filepath.Join(dirs[0], "man", name))
		if err != nil {
			t.Errorf("no man page %s", name)
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		page, _ := io.ReadAll(zr)
		if !bytes.Contains(page, []byte(`.TH "ROOTFSCTL" "1" "Mar 2026"`)) || !bytes.Contains(page, []byte(".SH SYNOPSIS")) {
			t.Errorf("%s is not a dated man page:\n%.300s", name, page)
		}
		if other, _ := os.ReadFile(filepath.Join(dirs[1], "man", name)); !bytes.Equal(data, other) {
			t.Errorf("%s differs between two runs", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "man", "rootfsctl-gen-docs.1.gz")); err == nil {
		t.Error("the hidden gen-docs command has a man page")
	}
	apply, _ := os.ReadFile(filepath.Join(dirs[0], "man", "rootfsctl-apply.1.gz"))
	zr, _ := gzip.NewReader(bytes.NewReader(apply))
	page, _ := io.ReadAll(zr)
	if !bytes.Contains(page, []byte("--trace")) {
		t.Error("rootfsctl-apply(1) lacks --trace: not generated from the command")
	}
	for file, marker := range map[string]string{"rootfsctl.bash": "__start_rootfsctl", "_rootfsctl": "#compdef rootfsctl", "rootfsctl.fish": "complete -c rootfsctl"} {
		data, err := os.ReadFile(filepath.Join(dirs[0], "completions", file))
		if err != nil || !bytes.Contains(data, []byte(marker)) {
			t.Errorf("completion %s: %v, lacks %q", file, err, marker)
		}
	}
	if code, _, _ := cli(t, context.Background(), "gen-docs", "--date", "yesterday", t.TempDir()); code != exitUsage {
		t.Errorf("bad --date: exit %d", code)
	}
}
