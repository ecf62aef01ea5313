package main

import (
	"io"
	"net/url"
	"path/filepath"

	"github.com/owenrumney/go-sarif/v3/pkg/report"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

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
	run.Tool.Driver.WithVersion(buildVersion()).WithSemanticVersion(buildVersion())
	run.AddRule(sarifRule).
		WithName("InvalidPlan").
		WithDescription("The plan does not load: YAML syntax, keys and value types, step types and parameters, needs, cycles or variables.").
		WithDefaultConfiguration(sarif.NewReportingConfiguration().WithLevel("error"))
	for _, d := range ds {
		uri, base := sarifURI(d.File)
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

// sarifURI is a plan path as a SARIF artifact URI and its base id.
func sarifURI(file string) (uri, base string) {
	p := filepath.ToSlash(filepath.Clean(file))
	if filepath.IsAbs(file) {
		return (&url.URL{Scheme: "file", Path: p}).String(), ""
	}
	return (&url.URL{Path: p}).String(), "%SRCROOT%"
}
