package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps"
)

// runFlags are shared by plan and apply.
type runFlags struct {
	vars        varFlags
	parallelism int
	keepGoing   bool
	targets     []string
	output      string
	report      string
	preflight   preflightFlags
	lockWait    time.Duration
	cacheMax    string
	trace       string
	tracer      *engine.Tracer // set when trace is
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
	f.vars.register(cmd)
	f.vars.registerMirror(cmd)
	cmd.Flags().IntVarP(&f.parallelism, "parallelism", "j", 0, "steps run at once, 1 to 1024 (default: the plan's parallelism, else 4)")
	cmd.Flags().StringArrayVar(&f.targets, "target", nil, "run only this step and what it needs (repeatable)")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "result format on stdout: text (a table) or json (one document, whatever the outcome)")
	cmd.Flags().StringVar(&f.report, "report", "", "also write the result as JSON to this file, whatever the outcome")
	if apply {
		cmd.Flags().BoolVar(&f.keepGoing, "keep-going", false, "after a failure, run the steps that do not depend on it (overrides the plan's failurePolicy)")
		cmd.Flags().DurationVar(&f.lockWait, "lock-wait", 0, "wait this long for another apply on the same machine to finish (default: refuse at once)")
		cmd.Flags().StringVar(&f.cacheMax, "cache-max-size", "10GiB", "after a successful apply, prune the least recently used cache entries down to this size (0 keeps nothing)")
		cmd.Flags().StringVar(&f.trace, "trace", "", "also write the run as a Chrome trace (open in Perfetto or chrome://tracing) to this file, whatever the outcome")
		f.preflight.register(cmd, true)
	}
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("text", "json"))
}

// check validates the flags before anything is loaded.
func (f *runFlags) check(a *app, cmd *cobra.Command) error {
	if cmd.Flags().Changed("parallelism") && (f.parallelism < 1 || f.parallelism > maxParallelism) {
		return usagef("--parallelism %d: must be between 1 and %d", f.parallelism, maxParallelism)
	}
	if f.lockWait < 0 {
		return usagef("--lock-wait %s: must not be negative", f.lockWait)
	}
	if err := exclusive(cmd, [2]string{"skip-preflight", "ignore-preflight-errors"}, [2]string{"skip-preflight", "fail-on-warnings"}); err != nil {
		return err
	}
	for _, out := range [][2]string{{"report", f.report}, {"trace", f.trace}} {
		if out[1] == "" {
			continue
		}
		if err := writable(out[1]); err != nil {
			return usagef("--%s %s: %v", out[0], out[1], err)
		}
	}
	if f.report != "" && f.trace != "" && sameFile(f.report, f.trace) {
		return usagef("--report and --trace name the same file %s", f.trace)
	}
	return checkNames(a.reg(), f.preflight.ignore)
}

// execute loads the plan and runs it. Whatever happens after the flags
// are understood, it emits one result: a table or one JSON document on
// stdout, and the same document in --report.
func (a *app) execute(cmd *cobra.Command, file string, f *runFlags, checkOnly bool) (rep *engine.Report, err error) {
	if f.output != "text" && f.output != "json" {
		return nil, usagef("--output %q: use text or json", f.output)
	}
	rep = &engine.Report{File: file, CheckOnly: checkOnly, Status: engine.OutcomeError}
	defer func() {
		if werr := a.emit(f, rep, err); werr != nil && err == nil {
			err = &exitError{code: exitFailed, err: werr}
		}
	}()
	opts, err := a.applyOptions(cmd, f, checkOnly)
	if err != nil {
		return rep, err
	}
	opts.Logger.Debug().Str("phase", "load").Str("plan", file).Msg("loading the plan")
	endLoad := func(map[string]any) {}
	if opts.Trace != nil {
		endLoad = opts.Trace.Begin("apply", "load", map[string]any{"plan": file})
	}
	_, g, err := a.loadPlan(file, &f.vars)
	endLoad(nil)
	if err != nil {
		if ds, ok := invalidPlan(err); ok {
			rep.Status, rep.Diagnostics = engine.OutcomeInvalid, ds
		}
		return rep, a.failed(err)
	}
	rep, err = engine.Apply(cmd.Context(), g, opts)
	return rep, a.applyError(file, rep, err, f.lockWait)
}

// applyOptions checks the flags and turns them into the apply's options.
func (a *app) applyOptions(cmd *cobra.Command, f *runFlags, checkOnly bool) (engine.ApplyOptions, error) {
	log, err := a.logger()
	if err != nil {
		return engine.ApplyOptions{}, err
	}
	if err := f.check(a, cmd); err != nil {
		return engine.ApplyOptions{}, err
	}
	opts := engine.ApplyOptions{Parallelism: f.parallelism, Targets: f.targets, CheckOnly: checkOnly, Logger: log,
		Progress: a.progress(log), LockWait: f.lockWait}
	if f.trace != "" {
		f.tracer = engine.NewTracer()
		opts.Trace = f.tracer
	}
	if f.keepGoing {
		opts.FailurePolicy = engine.KeepGoing
	}
	if checkOnly {
		return opts, nil
	}
	cacheMax, err := parseSize(f.cacheMax)
	if err != nil {
		return opts, usagef("--cache-max-size %w", err)
	}
	before, after := steps.CacheUpkeep(a.cache(), cacheMax)
	opts.Before, opts.After = append(opts.Before, before), append(opts.After, after)
	if !f.preflight.skip {
		opts.Preflight = &engine.PreflightOptions{Ignore: f.preflight.ignore, FailOnWarnings: f.preflight.failOnWarnings}
	}
	return opts, nil
}

// applyError is the command's error for an apply's outcome, with the flag
// names that get past it.
func (a *app) applyError(file string, rep *engine.Report, err error, lockWait time.Duration) error {
	var le *engine.LockedError
	switch {
	case errors.Is(err, engine.ErrInterrupted):
		return &exitError{code: exitInterrupted, err: errors.New("interrupted; the partial result is above, and the next apply repairs")}
	case errors.Is(err, engine.ErrPreflightFailed):
		_ = rep.Preflight.WriteTable(a.stderr)
		return &exitError{code: exitFailed, err: fmt.Errorf("%s: preflight failed (%s, %s); nothing was changed (--ignore-preflight-errors or --skip-preflight to override)",
			file, engine.Plural(rep.Preflight.Summary.Errors, "error"), engine.Plural(rep.Preflight.Summary.Warnings, "warning"))}
	case errors.As(err, &le) && lockWait == 0:
		return &exitError{code: exitFailed, err: fmt.Errorf("%w; wait for it or use --lock-wait", err)}
	case errors.As(err, &le):
		return &exitError{code: exitFailed, err: fmt.Errorf("%w (waited --lock-wait %s)", err, lockWait)}
	case err != nil:
		return err
	case rep.Failed():
		return &exitError{code: exitFailed, err: fmt.Errorf("%s: %s", file, rep.Summary())}
	}
	return nil
}

// emit prints the result document: the table (when steps were reached) or
// JSON on stdout, and JSON in --report.
func (a *app) emit(f *runFlags, rep *engine.Report, runErr error) error {
	if rep.Status == engine.OutcomeError && runErr != nil {
		_, rep.Error = classify(runErr) // with the flag names the engine does not know
	}
	var err error
	switch {
	case f.output == "json":
		err = rep.WriteJSON(a.stdout)
	case len(rep.Steps) > 0:
		err = rep.WriteTable(a.stdout)
	}
	if err != nil {
		return err
	}
	if f.tracer != nil {
		var buf bytes.Buffer
		if err := f.tracer.WriteChrome(&buf, "rootfsctl apply "+rep.File); err != nil {
			return err
		}
		if err := writeFileAtomic(f.trace, buf.Bytes()); err != nil {
			return err
		}
	}
	if f.report != "" {
		var buf bytes.Buffer
		if err := rep.WriteJSON(&buf); err != nil {
			return err
		}
		return writeFileAtomic(f.report, buf.Bytes())
	}
	return nil
}

// sameFile reports whether two paths name one file: the same absolute
// path, or (when they exist) the same inode through links.
func sameFile(a, b string) bool {
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	if errA == nil && errB == nil && absA == absB {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// writable checks, before anything is done, that a report can be written
// at path: its directory exists and takes a new file, and path is not a
// directory.
func writable(path string) error {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("is not a regular file")
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".rootfsctl-report-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot create a file in %s: %v", filepath.Dir(path), err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeFileAtomic writes a file through a temporary file and a rename, so
// a reader never sees half a report.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rootfsctl-report-*")
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // best effort: gone after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
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
	a.registerPlanCompletions(cmd, &f.vars)
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
	a.registerPlanCompletions(cmd, &f.vars)
	a.registerCheckCompletion(cmd)
	return cmd
}
