package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps/cache"
)

// usageArgs turns cobra's argument-count errors into usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// parseVars turns repeated --var name=value flags into a map.
func parseVars(flags []string) (map[string]string, error) {
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		name, val, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, usageError{fmt.Errorf("--var %q: want name=value", f)}
		}
		out[name] = val
	}
	return out, nil
}

// loadOptions gathers the host facts (once per command) and the --var overrides.
func (a *app) loadOptions(varFlags []string) (engine.LoadOptions, error) {
	vars, err := parseVars(varFlags)
	if err != nil {
		return engine.LoadOptions{}, err
	}
	host, err := engine.GatherHost()
	if err != nil {
		return engine.LoadOptions{}, fmt.Errorf("gather host facts: %w", err)
	}
	return engine.LoadOptions{Registry: a.reg(), Host: host, Vars: vars}, nil
}

// loadPlan loads one plan and its graph; an invalid plan prints its
// diagnostics and fails with exit code 1.
func (a *app) loadPlan(file string, varFlags []string) (*engine.Plan, *engine.Graph, error) {
	opts, err := a.loadOptions(varFlags)
	if err != nil {
		return nil, nil, err
	}
	p, err := engine.Load(file, opts)
	var ds engine.Diagnostics
	if errors.As(err, &ds) {
		_ = ds.WriteText(a.stderr)
		return nil, nil, &exitError{code: exitFailed, err: fmt.Errorf("%s: %d problem(s); nothing was done", file, len(ds))}
	}
	if err != nil {
		return nil, nil, &exitError{code: exitFailed, err: err}
	}
	g, err := engine.NewGraph(p)
	if err != nil {
		return nil, nil, err
	}
	return p, g, nil
}

func (a *app) validateCommand() *cobra.Command {
	var format string
	var vars []string
	cmd := &cobra.Command{
		Use:   "validate [--format text|json|github] PLAN...",
		Short: "Check plans without touching the system",
		Long: `Checks everything about the plans that can be known without touching the
system: YAML syntax, keys and value types, step types and their typed
parameters, needs, dependency cycles, variables. Reports every problem,
sorted, as file:line:col: message. Exit code 1 when any plan is invalid.`,
		Example: `  rootfsctl validate plans/*.yaml
  rootfsctl validate --format github plans/kube-node.yaml   # annotations in GitHub Actions
  rootfsctl validate --format json plan.yaml | jq '.[].message'`,
		Args:              usageArgs(cobra.MinimumNArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" && format != "github" {
				return usageError{fmt.Errorf("--format %q: use text, json or github", format)}
			}
			opts, err := a.loadOptions(vars)
			if err != nil {
				return err
			}
			var all engine.Diagnostics
			var summaries []string
			for _, file := range args {
				p, err := engine.Load(file, opts)
				var ds engine.Diagnostics
				switch {
				case errors.As(err, &ds):
					all = append(all, ds...)
					continue
				case err != nil:
					all = append(all, engine.Diagnostic{Pos: engine.Pos{File: file}, Message: err.Error()})
					continue
				}
				g, err := engine.NewGraph(p)
				if err != nil {
					all = append(all, engine.Diagnostic{Pos: engine.Pos{File: file}, Message: err.Error()})
					continue
				}
				order := g.Order()
				stages := 0
				for _, id := range order {
					stages = max(stages, g.Stage(id))
				}
				summaries = append(summaries, fmt.Sprintf("%s: valid: plan %s, %d steps in %d stages", file, p.Name, len(order), stages))
			}
			all = all.Sort()
			switch format {
			case "json":
				if err := all.WriteJSON(a.stdout); err != nil {
					return err
				}
			case "github":
				if err := all.WriteGitHub(a.stdout); err != nil {
					return err
				}
			default:
				if err := all.WriteText(a.stdout); err != nil {
					return err
				}
				for _, s := range summaries {
					fmt.Fprintln(a.stdout, s)
				}
			}
			if len(all) > 0 {
				return &exitError{code: exitFailed, err: fmt.Errorf("%d problem(s) in %d of %d plan(s)", len(all), len(args)-len(summaries), len(args))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output: text (file:line:col: message), json or github (Actions annotations)")
	cmd.Flags().StringArrayVar(&vars, "var", nil, "set a plan variable, name=value (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("format", fixedCompletions("text", "json", "github"))
	return cmd
}

func (a *app) graphCommand() *cobra.Command {
	var format string
	var vars []string
	cmd := &cobra.Command{
		Use:   "graph [--format text|dot|mermaid|json] PLAN",
		Short: "Show the plan's steps and dependencies",
		Long: `Prints the plan's dependency graph: a readable text view grouped by stage
(steps in one stage may run at the same time), Graphviz DOT, Mermaid (renders
on GitHub) or JSON.`,
		Example: `  rootfsctl graph plans/kube-node.yaml
  rootfsctl graph --format dot plans/kube-node.yaml | dot -Tsvg > graph.svg
  rootfsctl graph --format mermaid plans/kube-node.yaml >> README.md`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch engine.Format(format) {
			case engine.FormatText, engine.FormatDOT, engine.FormatMermaid, engine.FormatJSON:
			default:
				return usageError{fmt.Errorf("--format %q: use text, dot, mermaid or json", format)}
			}
			_, g, err := a.loadPlan(args[0], vars)
			if err != nil {
				return err
			}
			return g.Render(a.stdout, engine.Format(format))
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output: text, dot, mermaid or json")
	cmd.Flags().StringArrayVar(&vars, "var", nil, "set a plan variable, name=value (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("format", fixedCompletions("text", "dot", "mermaid", "json"))
	return cmd
}

// runFlags are shared by plan and apply.
type runFlags struct {
	vars        []string
	parallelism int
	keepGoing   bool
	targets     []string
	output      string
	report      string
	preflight   preflightFlags
	lockWait    time.Duration
	cacheMax    string
}

// preflightFlags are shared by preflight and apply.
type preflightFlags struct {
	ignore         []string
	failOnWarnings bool
	skip           bool
}

func (f *preflightFlags) register(cmd *cobra.Command, apply bool) {
	cmd.Flags().StringSliceVar(&f.ignore, "ignore-preflight-errors", nil, "preflight checks whose errors become warnings (comma separated, case-insensitive; all for every check)")
	cmd.Flags().BoolVar(&f.failOnWarnings, "fail-on-warnings", false, "treat preflight warnings as errors")
	if apply {
		cmd.Flags().BoolVar(&f.skip, "skip-preflight", false, "do not run the preflight checks before applying")
	}
}

func (f *runFlags) register(cmd *cobra.Command, apply bool) {
	cmd.Flags().StringArrayVar(&f.vars, "var", nil, "set a plan variable, name=value (repeatable)")
	cmd.Flags().IntVarP(&f.parallelism, "parallelism", "j", 0, "steps run at once (default: the plan's parallelism, else 4)")
	cmd.Flags().StringArrayVar(&f.targets, "target", nil, "run only this step and what it needs (repeatable)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "result format on stdout: text (a table) or json")
	cmd.Flags().StringVar(&f.report, "report", "", "also write the per-step results as JSON to this file")
	if apply {
		cmd.Flags().BoolVar(&f.keepGoing, "keep-going", false, "after a failure, run the steps that do not depend on it (overrides the plan's failurePolicy)")
		cmd.Flags().DurationVar(&f.lockWait, "lock-wait", 0, "wait this long for another apply on the same machine to finish (default: refuse at once)")
		cmd.Flags().StringVar(&f.cacheMax, "cache-max-size", "10GiB", "after a successful apply, prune the least recently used cache entries down to this size (0 keeps nothing)")
		f.preflight.register(cmd, true)
	}
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("text", "json"))
}

// execute loads the plan and runs it; it prints the report in every case.
func (a *app) execute(cmd *cobra.Command, file string, f *runFlags, checkOnly bool) (*engine.Report, error) {
	if f.output != "text" && f.output != "json" {
		return nil, usageError{fmt.Errorf("--output %q: use text or json", f.output)}
	}
	if f.parallelism < 0 {
		return nil, usageError{fmt.Errorf("--parallelism %d: must be at least 1", f.parallelism)}
	}
	log, err := a.logger()
	if err != nil {
		return nil, err
	}
	p, g, err := a.loadPlan(file, f.vars)
	if err != nil {
		return nil, err
	}
	var cacheMax int64
	if !checkOnly {
		if cacheMax, err = parseSize(f.cacheMax); err != nil {
			return nil, usageError{fmt.Errorf("--cache-max-size: %w", err)}
		}
	}
	if !checkOnly && !f.preflight.skip {
		pre, err := engine.Preflight(cmd.Context(), p, g, engine.PreflightOptions{
			Ignore: f.preflight.ignore, FailOnWarnings: f.preflight.failOnWarnings, Targets: f.targets,
			OnlyChanging: true,
		})
		if err != nil {
			return nil, err
		}
		if pre.Status != "ok" {
			_ = pre.WriteTable(a.stderr)
			return nil, &exitError{code: exitFailed, err: fmt.Errorf("%s: preflight failed (%d errors, %d warnings); nothing was changed (--ignore-preflight-errors or --skip-preflight to override)", file, pre.Summary.Errors, pre.Summary.Warnings)}
		}
		for _, c := range pre.Checks {
			if c.Severity != engine.SeverityOK {
				log.Warn().Str("check", c.Name).Str("target", c.Target).Bool("ignored", c.Ignored).Msg(c.Message)
			}
		}
		log.Info().Int("ok", pre.Summary.OK).Int("warnings", pre.Summary.Warnings).Msg("preflight passed")
	}
	opts := engine.RunOptions{Parallelism: f.parallelism, Targets: f.targets, CheckOnly: checkOnly, Logger: log,
		Progress: a.progress(log), LockWait: f.lockWait}
	if f.keepGoing {
		opts.FailurePolicy = engine.KeepGoing
	}
	if !checkOnly {
		cache.New(a.cacheDir).CleanTemp()
	}
	rep, runErr := engine.Run(cmd.Context(), p, g, opts)
	if rep == nil {
		return nil, &exitError{code: exitFailed, err: runErr}
	}
	if !checkOnly && !rep.Failed() && rep.Count(engine.StatusChanged) > 0 {
		if removed, err := cache.New(a.cacheDir).Prune(cacheMax); err != nil {
			log.Warn().Err(err).Msg("could not prune the cache")
		} else if removed.Entries > 0 {
			log.Info().Int("entries", removed.Entries).Int64("bytes", removed.Bytes).Msg("pruned the cache")
		}
	}
	if f.output == "json" {
		err = rep.WriteJSON(a.stdout)
	} else {
		err = rep.WriteTable(a.stdout)
	}
	if err != nil {
		return rep, err
	}
	if f.report != "" {
		if err := writeReport(f.report, rep); err != nil {
			return rep, &exitError{code: exitFailed, err: err}
		}
	}
	if errors.Is(runErr, engine.ErrInterrupted) {
		return rep, &exitError{code: exitInterrupted, err: errors.New("interrupted; the partial result is above, and the next apply repairs")}
	}
	if rep.Failed() {
		return rep, &exitError{code: exitFailed, err: fmt.Errorf("%s: %s", file, rep.Summary())}
	}
	return rep, nil
}

// writeReport writes the JSON report through a temporary file and a rename,
// so a reader never sees half a report.
func writeReport(path string, rep *engine.Report) error {
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rootfsctl-report-*")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(tmp.Name()) // best effort: gone after a successful rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func (a *app) planCommand() *cobra.Command {
	var f runFlags
	var detailed bool
	cmd := &cobra.Command{
		Use:   "plan [--var k=v] [--detailed-exitcode] PLAN",
		Short: "Show what apply would change, changing nothing",
		Long: `Runs only the steps' up-to-date checks and prints, per step, whether
apply would change something and why. Nothing on the system is modified.
A step whose needs would change is checked against the system as it is now.`,
		Example: `  rootfsctl plan plans/kube-node.yaml --var machine=kube1
  rootfsctl plan --detailed-exitcode plans/kube-node.yaml || echo "changes pending (exit 2)"`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := a.execute(cmd, args[0], &f, true)
			if err != nil {
				return err
			}
			if detailed && rep.Count(engine.StatusWouldChange) > 0 {
				return &exitError{code: exitChanges}
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when something would change (0: nothing to do, 1: error)")
	return cmd
}

func (a *app) applyCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "apply [--var k=v] [-j N] [--keep-going] [--target ID]... [--report FILE] [--output text|json] PLAN",
		Short: "Run the plan",
		Long: `Runs the plan: every step starts as soon as all its needs have succeeded,
at most --parallelism at once. Each step first checks whether it is up to
date and changes nothing if so. Ends with a table of steps (status,
duration, message). Exit code 0 only when no step failed; 130 after SIGINT
or SIGTERM, which cancel the running steps and print the partial result.`,
		Example: `  sudo rootfsctl apply plans/kube-node.yaml --var machine=kube1
  rootfsctl apply -j 2 --keep-going --report result.json plan.yaml
  rootfsctl apply --target kube plans/kube-node.yaml   # kube and what it needs`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.execute(cmd, args[0], &f, false)
			return err
		},
	}
	f.register(cmd, true)
	return cmd
}

func (a *app) stepsCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "steps [TYPE]",
		Short: "List the step types, or document one",
		Example: `  rootfsctl steps
  rootfsctl steps file
  rootfsctl steps run -o json`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			var names []string
			for _, t := range a.reg().Types() {
				names = append(names, t.Name+"\t"+t.Summary)
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output %q: use text or json", output)}
			}
			types := a.reg().Types()
			if len(args) == 1 {
				t, ok := a.reg().Lookup(args[0])
				if !ok {
					return usageError{fmt.Errorf("unknown step type %q; rootfsctl steps lists them", args[0])}
				}
				types = []*engine.StepType{t}
			}
			if output == "json" {
				type typeDoc struct {
					Name    string            `json:"name"`
					Summary string            `json:"summary"`
					Doc     string            `json:"doc"`
					Params  []engine.ParamDoc `json:"params"`
				}
				var out []typeDoc
				for _, t := range types {
					out = append(out, typeDoc{t.Name, t.Summary, t.Doc, t.Params()})
				}
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if len(args) == 0 {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TYPE\tSUMMARY")
				for _, t := range types {
					fmt.Fprintf(tw, "%s\t%s\n", t.Name, t.Summary)
				}
				return tw.Flush()
			}
			t := types[0]
			fmt.Fprintf(a.stdout, "%s: %s\n\n%s\n\nPARAMETERS (under with:)\n", t.Name, t.Summary, t.Doc)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  NAME\tTYPE\tDEFAULT\tDESCRIPTION")
			for _, p := range t.Params() {
				def := p.Default
				if p.Required {
					def = "(required)"
				}
				desc := p.Description
				if len(p.Enum) > 0 {
					desc += " One of: " + strings.Join(p.Enum, ", ") + "."
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.Type, def, desc)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func (a *app) schemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the plan JSON Schema",
		Long: `Prints the JSON Schema of plans, generated from the step types' parameter
structs. Editors with yaml-language-server use it for completion and
errors when a plan starts with:
  # yaml-language-server: $schema=<path to>/schema/plan.schema.json`,
		Example: `  rootfsctl schema > plan.schema.json`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := engine.Schema(a.reg())
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(s)
			return err
		},
	}
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: `  rootfsctl version`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(a.stdout, "rootfsctl %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

func (a *app) preflightCommand() *cobra.Command {
	var pf preflightFlags
	var vars, targets []string
	var output string
	cmd := &cobra.Command{
		Use:   "preflight [--ignore-preflight-errors a,b|all] [--fail-on-warnings] [--output text|json] PLAN",
		Short: "Run the plan's non-mutating checks",
		Long: `Runs the checks the plan's steps contribute, changing nothing: that the
image manifest resolves (no layers are pulled), that every artifact URL is
reachable (HEAD, falling back to a one-byte ranged GET), and that the machine
directory and the nspawn configuration directories can be written. Messages
never contain URLs, credentials or image references. apply runs the same
checks first.`,
		Example: `  rootfsctl preflight plans/kube-node.yaml --var machine=kube1
  rootfsctl preflight --ignore-preflight-errors cni-artifacts plans/kube-node.yaml
  rootfsctl preflight -o json plans/kube-node.yaml | jq .summary`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output %q: use text or json", output)}
			}
			p, g, err := a.loadPlan(args[0], vars)
			if err != nil {
				return err
			}
			rep, err := engine.Preflight(cmd.Context(), p, g, engine.PreflightOptions{
				Ignore: pf.ignore, FailOnWarnings: pf.failOnWarnings, Targets: targets,
			})
			if err != nil {
				return err
			}
			if output == "json" {
				err = rep.WriteJSON(a.stdout)
			} else {
				err = rep.WriteTable(a.stdout)
			}
			if err != nil {
				return err
			}
			if rep.Status != "ok" {
				return &exitError{code: exitFailed, err: fmt.Errorf("%s: preflight failed", args[0])}
			}
			return nil
		},
	}
	pf.register(cmd, false)
	cmd.Flags().StringArrayVar(&vars, "var", nil, "set a plan variable, name=value (repeatable)")
	cmd.Flags().StringArrayVar(&targets, "target", nil, "only the checks of this step and what it needs (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("text", "json"))
	return cmd
}

func (a *app) cacheCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "cache",
		Short: "Inspect or prune the download cache",
		Long: `The cache holds downloaded artifacts and image blobs by SHA-256 (and the
published checksums of releases), so another machine on the same host, or a
re-provisioned one, downloads nothing again. Entries are verified when they
are written and again when they are read. Several runs may share it.`,
		Example: `  rootfsctl cache info
  rootfsctl cache prune --max-size 2GiB
  rootfsctl cache prune --all`,
	}
	info := &cobra.Command{
		Use:     "info",
		Short:   "Show the cache's location and size",
		Example: `  rootfsctl cache info --cache-dir /var/cache/rootfsctl`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := cache.New(a.cacheDir).Usage()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "%s: %d entries, %s\n", a.cacheDir, u.Entries, formatSize(u.Bytes))
			return err
		},
	}
	var maxSize string
	var all bool
	prune := &cobra.Command{
		Use:   "prune [--max-size SIZE | --all]",
		Short: "Remove the least recently used entries",
		Example: `  rootfsctl cache prune --max-size 2GiB
  rootfsctl cache prune --all`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, err := parseSize(maxSize)
			if err != nil {
				return usageError{fmt.Errorf("--max-size: %w", err)}
			}
			if all {
				limit = 0
			}
			removed, err := cache.New(a.cacheDir).Prune(limit)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "removed %d entries, %s\n", removed.Entries, formatSize(removed.Bytes))
			return err
		},
	}
	prune.Flags().StringVar(&maxSize, "max-size", "10GiB", "keep at most this much (B, KiB, MiB, GiB, TiB)")
	prune.Flags().BoolVar(&all, "all", false, "remove every entry")
	c.AddCommand(info, prune)
	return c
}

// parseSize reads "10GiB", "500MiB", "1024", "0".
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%q is not a size like 10GiB", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q is not a size like 10GiB", s)
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
