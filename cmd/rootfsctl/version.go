package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at build time by the release build (-ldflags "-X main.version=...
// -X main.commit=... -X main.date=..."); a plain go build or go install
// falls back on what the Go toolchain stamped into the binary.
var (
	version = ""
	commit  = ""
	date    = ""
)

// buildInfo is what `rootfsctl version` reports, in its JSON names.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// readBuildInfo puts together the ldflags values and, where they are
// missing, the module version (go install rootfsctl@v1.2.3) or the VCS
// stamp of a checkout (go build ./cmd/rootfsctl). Unknown values are
// "unknown", the version "dev".
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, Date: date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	dirty := b.fromToolchain()
	if b.Version == "" {
		b.Version = "dev"
		if len(b.Commit) >= 12 {
			b.Version += "-" + b.Commit[:12]
			if dirty {
				b.Version += "-dirty"
			}
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	if b.Date == "" {
		b.Date = "unknown"
	}
	return b
}

// fromToolchain fills what -ldflags left empty from the Go toolchain's
// stamp, and says whether the checkout had uncommitted changes.
func (b *buildInfo) fromToolchain() (dirty bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && b.Commit == "":
			b.Commit = s.Value
		case s.Key == "vcs.time" && b.Date == "":
			b.Date = s.Value
		case s.Key == "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	return dirty
}

// buildVersion is the version alone, as the User-Agent carries it.
func buildVersion() string { return readBuildInfo().Version }

// versionLine is what --version prints: one line.
func versionLine() string {
	b := readBuildInfo()
	return fmt.Sprintf("rootfsctl %s (%s, %s)", b.Version, b.GoVersion, b.Platform)
}

func (a *app) versionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version [-o text|json]",
		Short: "Print the version, commit, build date and Go version",
		Long: `Prints rootfsctl's version, the commit and date it was built from, the Go
version it was built with, and the platform. Release builds carry all of
them; a build from a checkout carries the commit and its date as Go stamps
them; -o json prints one JSON object with the same fields.`,
		Example: `  rootfsctl version
  rootfsctl version -o json | jq -r .version`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			b := readBuildInfo()
			switch output {
			case "json":
				return writeJSONDoc(a.stdout, b)
			case "text":
				_, err := fmt.Fprintf(a.stdout, "rootfsctl %s\n  commit:   %s\n  built:    %s\n  go:       %s\n  platform: %s\n",
					b.Version, b.Commit, b.Date, b.GoVersion, b.Platform)
				return err
			}
			return usagef("-o %q: use text or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("text", "json"))
	return cmd
}
