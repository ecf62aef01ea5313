package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// genDocsCommand writes the man pages (one per command, from the same help
// text --help prints) and the shell completions, for packages. Hidden: it
// is a build step (make release-assets), not something users run.
func (a *app) genDocsCommand(root *cobra.Command) *cobra.Command {
	var date string
	cmd := &cobra.Command{
		Use:    "gen-docs DIR",
		Short:  "Write man pages (DIR/man) and shell completions (DIR/completions) for packaging",
		Hidden: true,
		Args:   usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			when, err := time.Parse(time.RFC3339, date)
			if err != nil {
				return usagef("--date %q: want an RFC 3339 time: %v", date, err)
			}
			return genDocs(root, args[0], when)
		},
	}
	// The pages' date is the commit's, so the same commit gives the same
	// packages.
	cmd.Flags().StringVar(&date, "date", "2026-01-01T00:00:00Z", "date printed in the man pages (RFC 3339)")
	return cmd
}

func genDocs(root *cobra.Command, dir string, when time.Time) error {
	man, comp := filepath.Join(dir, "man"), filepath.Join(dir, "completions")
	for _, d := range []string{man, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	root.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{Title: "ROOTFSCTL", Section: "1", Source: "rootfsctl " + buildVersion(), Manual: "rootfsctl manual", Date: &when}
	tmp, err := os.MkdirTemp(dir, ".man-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := doc.GenManTree(root, hdr, tmp); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	pages, err := filepath.Glob(filepath.Join(tmp, "*.1"))
	if err != nil {
		return err
	}
	for _, p := range pages {
		if err := gzipFile(p, filepath.Join(man, filepath.Base(p)+".gz"), when); err != nil {
			return err
		}
	}
	for _, sh := range []struct{ name, file string }{{"bash", "rootfsctl.bash"}, {"zsh", "_rootfsctl"}, {"fish", "rootfsctl.fish"}} {
		var buf bytes.Buffer
		var err error
		switch sh.name {
		case "bash":
			err = root.GenBashCompletionV2(&buf, true)
		case "zsh":
			err = root.GenZshCompletion(&buf)
		case "fish":
			err = root.GenFishCompletion(&buf, true)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(comp, sh.file), buf.Bytes(), 0o644)
		}
		if err != nil {
			return fmt.Errorf("%s completion: %w", sh.name, err)
		}
	}
	return nil
}

// gzipFile compresses src to dst with a fixed header time (reproducible
// packages; man-db reads .gz pages).
func gzipFile(src, dst string, when time.Time) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Name, zw.ModTime = strings.TrimSuffix(filepath.Base(dst), ".gz"), when
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(dst, buf.Bytes(), 0o644)
}
