package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
)

func (a *app) cacheCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "cache",
		Short: "Inspect or prune the download cache",
		Long: `The cache holds downloaded artifacts, archive members, image configs and
layers by SHA-256 (gzip layers inflated, under their diff ID, so that they
are not inflated again), and the published checksums of releases, so
another machine on the same host, or a re-provisioned one, downloads nothing
again. Entries are verified when they
are written and again when they are read. Several runs may share it.`,
		Example: `  rootfsctl cache info
  rootfsctl cache prune --max-size 2GiB
  rootfsctl cache prune --all`,
	}
	c.AddCommand(a.cacheInfoCommand(), a.cachePruneCommand())
	return c
}

func (a *app) cacheInfoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the cache's location and size",
		Long:  `Prints the cache directory, how many entries it holds and their total size.`,
		Example: `  rootfsctl cache info
  rootfsctl cache info --cache-dir /var/cache/rootfsctl`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(a.cacheDir); errors.Is(err, fs.ErrNotExist) {
				_, err = fmt.Fprintf(a.stdout, "%s: no cache yet (it is created by the first download)\n", a.cacheDir)
				return err
			}
			u, err := a.cache().Usage()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s: %s, %s\n", a.cacheDir, engine.Plural(u.Entries, "entry"), formatSize(u.Bytes))
			return err
		},
	}
}

func (a *app) cachePruneCommand() *cobra.Command {
	var maxSize string
	var all bool
	prune := &cobra.Command{
		Use:   "prune [--max-size SIZE | --all]",
		Short: "Remove the least recently used entries",
		Long: `Removes the least recently used entries until the cache holds at most
--max-size (500MB and 10G are decimal, 10GiB binary), or every entry with
--all. Temporary files of runs that were killed go too.`,
		Example: `  rootfsctl cache prune --max-size 2GiB
  rootfsctl cache prune --all`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := exclusive(cmd, [2]string{"all", "max-size"}); err != nil {
				return err
			}
			limit, err := parseSize(maxSize)
			if err != nil {
				return usagef("--max-size %w", err)
			}
			if all {
				limit = 0
			}
			removed, err := a.cache().Prune(cmd.Context(), limit)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "removed %s, %s\n", engine.Plural(removed.Entries, "entry"), formatSize(removed.Bytes))
			return err
		},
	}
	prune.Flags().StringVar(&maxSize, "max-size", "10GiB", "keep at most this much (500MB, 10G, 10GiB)")
	prune.Flags().BoolVar(&all, "all", false, "remove every entry")
	return prune
}
