package main

import (
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/owenrumney/go-sarif/v3/pkg/report"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	"golang.org/x/mod/semver"

	"github.com/rootfsctl/rootfsctl/engine"
)

// sarifRule is the one rule every plan problem is reported under: a
// validator's findings are all "this plan would not load".
const sarifRule = "rootfsctl/invalid-plan"

// writeSARIF writes the diagnostics as one SARIF 2.1.0 log, as GitHub code
// scanning and other dashboards read it. Relative plan paths are given
// relative to %SRCROOT% (the checkout), absolute ones as file URIs; a
// problem without a line (an unreadable file) has no region.
func writeSARIF(w io.Writer, ds engine.Diagnostics) error {
	rep := report.NewV210Report()
	run := sarif.NewRunWithInformationURI("rootfsctl", "https://github.com/rootfsctl/rootfsctl")
	v := buildVersion()
	run.Tool.Driver.WithVersion(v)
	if semver.IsValid("v" + strings.TrimPrefix(v, "v")) {
		run.Tool.Driver.WithSemanticVersion(strings.TrimPrefix(v, "v"))
	}
	run.AddRule(sarifRule).
		WithName("InvalidPlan").
		WithDescription("The plan does not load: YAML syntax, keys and value types, step types and parameters, needs, cycles or variables.").
		WithDefaultConfiguration(sarif.NewReportingConfiguration().WithLevel("error"))
	paths := checkoutPaths{}
	for _, d := range ds {
		uri, base := paths.uri(d.File)
		loc := sarif.NewArtifactLocation().WithURI(uri)
		if base != "" {
			loc.WithURIBaseID(base)
		}
		phys := sarif.NewPhysicalLocation().WithArtifactLocation(loc)
		if d.Line > 0 {
			region := sarif.NewRegion().WithStartLine(d.Line)
			if d.Col > 0 {
				region.WithStartColumn(d.Col)
			}
			phys.WithRegion(region)
		}
		run.CreateResultForRule(sarifRule).
			WithLevel("error").
			WithMessage(sarif.NewTextMessage(d.Message)).
			AddLocation(sarif.NewLocationWithPhysicalLocation(phys))
	}
	rep.AddRun(run)
	if err := rep.PrettyWrite(w); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// checkoutPaths names plan files from the top of their checkouts, looking
// each file up once however many problems it has.
type checkoutPaths map[string]struct {
	rel string
	ok  bool
}

func (c checkoutPaths) of(file string) (string, bool) {
	v, hit := c[file]
	if !hit {
		v.rel, v.ok = repoRelative(file)
		c[file] = v
	}
	return v.rel, v.ok
}

// uri is a plan path as a SARIF artifact URI and its base id: inside a git
// checkout, relative to its top (%SRCROOT%), wherever rootfsctl ran from;
// elsewhere an absolute file URI.
func (c checkoutPaths) uri(file string) (uri, base string) {
	if rel, ok := c.of(file); ok {
		return (&url.URL{Path: rel}).String(), "%SRCROOT%"
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Clean(abs))}).String(), ""
}

// maxRepoDepth bounds the walk up to a checkout's top.
const maxRepoDepth = 64

// repoRelative is file's path from the top of the git checkout that holds
// it (the directory with .git), in slashes; false outside a checkout.
// Code-scanning and annotations name files that way, whatever directory a
// CI step ran in.
func repoRelative(file string) (string, bool) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", false
	}
	for dir, i := filepath.Dir(abs), 0; i < maxRepoDepth; dir, i = filepath.Dir(dir), i+1 {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			rel, err := filepath.Rel(dir, abs)
			if err != nil || strings.HasPrefix(rel, "..") {
				return "", false
			}
			return filepath.ToSlash(rel), true
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	return "", false
}

// forCI returns the diagnostics with each file named as code scanning and
// GitHub name it: from the top of its checkout when it is in one.
func forCI(ds engine.Diagnostics) engine.Diagnostics {
	out := make(engine.Diagnostics, len(ds))
	paths := checkoutPaths{}
	for i, d := range ds {
		if rel, ok := paths.of(d.File); ok {
			d.File = rel
		}
		out[i] = d
	}
	return out
}
