package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

// loadOptions gathers the host facts (once per command) and the overrides.
func (a *app) loadOptions(vars *varFlags) (engine.LoadOptions, error) {
	overrides, err := vars.overrides()
	if err != nil {
		return engine.LoadOptions{}, err
	}
	if vars.withMirror {
		if a.mirror, a.mirrorFallback, err = vars.selectMirror(a); err != nil {
			return engine.LoadOptions{}, err
		}
		a.registry = nil // built again, with the mirror
	}
	host, err := engine.GatherHost()
	if err != nil {
		return engine.LoadOptions{}, fmt.Errorf("gather host facts: %w", err)
	}
	return engine.LoadOptions{Registry: a.reg(), Host: host, Overrides: overrides}, nil
}

// errInvalidPlan is a plan that did not load; its diagnostics are in hand.
type errInvalidPlan struct {
	file string
	ds   engine.Diagnostics
}

func (e *errInvalidPlan) Error() string {
	return fmt.Sprintf("%s: %s; nothing was done", e.file, engine.Plural(e.ds.Count(), "problem"))
}

// loadPlan loads one plan and its graph. An invalid plan is an
// *errInvalidPlan; callers print its diagnostics as their output requires.
func (a *app) loadPlan(file string, vars *varFlags) (*engine.Plan, *engine.Graph, error) {
	opts, err := a.loadOptions(vars)
	if err != nil {
		return nil, nil, err
	}
	p, err := a.loadWith(file, opts)
	if err != nil {
		return nil, nil, err
	}
	g, err := engine.NewGraph(p)
	if err != nil {
		return nil, nil, err
	}
	return p, g, nil
}

// loadWith loads one plan with opts; an invalid plan is an
// *errInvalidPlan.
func (a *app) loadWith(file string, opts engine.LoadOptions) (*engine.Plan, error) {
	p, err := engine.Load(file, opts)
	var ds engine.Diagnostics
	if errors.As(err, &ds) {
		return nil, &errInvalidPlan{file: file, ds: ds}
	}
	return p, err
}

// failed turns a load error into the command's error: diagnostics go to
// stderr and the exit code is 1; anything else passes through.
// invalidPlan returns the diagnostics of an invalid plan.
func invalidPlan(err error) (engine.Diagnostics, bool) {
	var ip *errInvalidPlan
	if errors.As(err, &ip) {
		return ip.ds, true
	}
	return nil, false
}

func (a *app) failed(err error) error {
	var ip *errInvalidPlan
	if errors.As(err, &ip) {
		if a.jsonLogs() {
			log := zerolog.New(a.stderr).With().Timestamp().Logger()
			for _, d := range ip.ds {
				log.Error().Str("file", d.File).Int("line", d.Line).Int("col", d.Col).Msg(d.Message)
			}
		} else {
			_ = ip.ds.WriteText(a.stderr)
		}
		return &exitError{code: exitFailed, err: err}
	}
	return err
}

func (a *app) validateCommand() *cobra.Command {
	var format string
	var vars varFlags
	cmd := &cobra.Command{
		Use:   "validate [--format text|json|github|sarif] PLAN...",
		Short: "Check plans without touching the system",
		Long: `Checks everything about the plans that can be known without touching the
system: YAML syntax, keys and value types, step types and their typed
parameters, needs, dependency cycles, variables. Reports every problem,
sorted, as file:line:col: message. Exit code 1 when any plan is invalid.`,
		Example: `  rootfsctl validate plans/*.yaml
  rootfsctl validate --format github plans/kube-node.yaml   # annotations in GitHub Actions
  rootfsctl validate --format json plan.yaml | jq '.[].message'
  rootfsctl validate --format sarif plans/*.yaml > rootfsctl.sarif   # code scanning`,
		Args:              usageArgs(cobra.MinimumNArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" && format != "github" && format != "sarif" {
				return usagef("--format %q: use text, json, github or sarif", format)
			}
			return a.validate(args, format, &vars)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "o", "text", "output: text (file:line:col: message), json, github (Actions annotations) or sarif (SARIF 2.1.0)")
	vars.register(cmd)
	_ = cmd.RegisterFlagCompletionFunc("format", fixedCompletions("text", "json", "github", "sarif"))
	return cmd
}

// validate checks every plan and prints their problems in format.
func (a *app) validate(files []string, format string, vars *varFlags) error {
	opts, err := a.loadOptions(vars)
	if err != nil {
		return err
	}
	var all engine.Diagnostics
	var summaries []string
	// A --var need only be declared by one of the plans: CI checks many
	// plans with one set of site values.
	unknownTo := &varUse{unknown: map[string]int{}}
	for _, file := range files {
		ds, summary := validateOne(file, opts, unknownTo)
		all = append(all, ds...)
		if summary != "" {
			summaries = append(summaries, summary)
		}
	}
	for _, o := range opts.Overrides {
		if unknownTo.unknown[o.Name] == len(files) && !o.Optional {
			return usagef("%s: no plan declares a variable %q%s", o.Origin, o.Name, engine.Suggest(o.Name, unknownTo.known))
		}
	}
	all = all.Sort()
	if err := a.writeDiagnostics(format, all, summaries); err != nil {
		return err
	}
	if len(all) > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("%s in %d of %s", engine.Plural(all.Count(), "problem"),
			len(files)-len(summaries), engine.Plural(len(files), "plan"))}
	}
	return nil
}

// validateOne checks one plan: its problems, or a line summing it up.
func validateOne(file string, opts engine.LoadOptions, unknownTo *varUse) (engine.Diagnostics, string) {
	p, err := loadIgnoringUnknown(file, opts, unknownTo)
	var ds engine.Diagnostics
	switch {
	case errors.As(err, &ds):
		return ds, ""
	case err != nil:
		return engine.Diagnostics{{Pos: engine.Pos{File: file}, Message: err.Error()}}, ""
	}
	g, err := engine.NewGraph(p)
	if err != nil {
		return engine.Diagnostics{{Pos: engine.Pos{File: file}, Message: err.Error()}}, ""
	}
	stages := 0
	for _, id := range g.Order() {
		stages = max(stages, g.Stage(id))
	}
	return nil, fmt.Sprintf("%s: valid: plan %s, %s in %s", file, p.Name,
		engine.Plural(len(p.Steps), "step"), engine.Plural(stages, "stage"))
}

func (a *app) writeDiagnostics(format string, all engine.Diagnostics, summaries []string) error {
	switch format {
	case "json":
		return all.WriteJSON(a.stdout)
	case "github":
		return forCI(all).WriteGitHub(a.stdout)
	case "sarif":
		return writeSARIF(a.stdout, all)
	}
	if err := all.WriteText(a.stdout); err != nil {
		return err
	}
	for _, s := range summaries {
		if _, err := fmt.Fprintln(a.stdout, s); err != nil {
			return err
		}
	}
	return nil
}

// maxReport bounds a report read back by graph --report: a report of the
// largest plan the loader accepts is far smaller.
const maxReport = 64 << 20

// readReport reads a run report written by apply or plan.
func readReport(file string) (*engine.Report, error) {
	data, err := machine.ReadFile(nil, file, maxReport)
	if errors.Is(err, machine.ErrTooLarge) {
		return nil, fmt.Errorf("larger than %s; not a report of rootfsctl", humanize.IBytes(maxReport))
	}
	if err != nil {
		return nil, err
	}
	var rep engine.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("not a JSON report of rootfsctl apply or plan: %v", err)
	}
	if rep.Status == "" || rep.Steps == nil {
		return nil, fmt.Errorf("not a report of rootfsctl apply or plan (no status or steps)")
	}
	return &rep, nil
}

// varUse counts, by name, the plans that do not declare an override's
// variable, and gathers the names they do declare (for suggestions).
type varUse struct {
	unknown map[string]int
	known   []string
}

// loadIgnoringUnknown loads a plan, dropping the overrides it does not
// declare, and counts them in unknownTo.
func loadIgnoringUnknown(file string, opts engine.LoadOptions, unknownTo *varUse) (*engine.Plan, error) {
	p, err := engine.Load(file, opts)
	var uv *engine.UnknownVarError
	if !errors.As(err, &uv) {
		return p, err
	}
	unknownTo.known = append(unknownTo.known, uv.Known...)
	skip := map[string]bool{}
	for _, o := range uv.Unknown {
		if !skip[o.Name] {
			skip[o.Name] = true
			unknownTo.unknown[o.Name]++
		}
	}
	var keep []engine.VarOverride
	for _, o := range opts.Overrides {
		if !skip[o.Name] {
			keep = append(keep, o)
		}
	}
	opts.Overrides = keep
	return engine.Load(file, opts)
}

func (a *app) graphCommand() *cobra.Command {
	var format, report string
	var vars varFlags
	cmd := &cobra.Command{
		Use:   "graph [--format text|dot|mermaid|json] [--report run.json] PLAN",
		Short: "Show the plan's steps and dependencies",
		Long: `Prints the plan's dependency graph: a readable text view grouped by stage
(steps in one stage may run at the same time), Graphviz DOT, Mermaid (renders
on GitHub) or JSON.

With --report, the JSON report of an earlier apply or plan (--report or
-o json) colours each step by its status in that run (changed green,
unchanged grey, would-change yellow, failed red, cancelled orange, blocked
dark grey, not run white), labels it with its duration and draws the
critical path in bold, so that a failed or slow run can be seen at a
glance. A report of another plan, or with steps the plan lacks, is refused.`,
		Example: `  rootfsctl graph plans/kube-node.yaml
  rootfsctl graph --format dot plans/kube-node.yaml | dot -Tsvg > graph.svg
  { echo '` + "```mermaid" + `'; rootfsctl graph -o mermaid plans/kube-node.yaml; echo '` + "```" + `'; } >> README.md
  rootfsctl apply --report run.json plans/kube-node.yaml
  rootfsctl graph --report run.json -o dot plans/kube-node.yaml | dot -Tsvg > run.svg`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch engine.Format(format) {
			case engine.FormatText, engine.FormatDOT, engine.FormatMermaid, engine.FormatJSON:
			default:
				return usagef("--format %q: use text, dot, mermaid or json", format)
			}
			var rep *engine.Report
			if report != "" {
				var err error
				if rep, err = readReport(report); err != nil {
					return usagef("--report %s: %v", report, err)
				}
			}
			_, g, err := a.loadPlan(args[0], &vars)
			if err != nil {
				return a.failed(err)
			}
			if rep == nil {
				return g.Render(a.stdout, engine.Format(format))
			}
			if err := g.RenderRun(a.stdout, engine.Format(format), rep); err != nil {
				return usagef("--report %s: %v", report, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "o", "text", "output: text, dot, mermaid or json")
	cmd.Flags().StringVar(&report, "report", "", "colour the graph by the run in this JSON report of an earlier apply or plan")
	vars.register(cmd)
	a.registerPlanCompletions(cmd, &vars)
	_ = cmd.RegisterFlagCompletionFunc("format", fixedCompletions("text", "dot", "mermaid", "json"))
	return cmd
}
