package main

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
)

// preflightRun is what the preflight command's flags say.
type preflightRun struct {
	pf             preflightFlags
	vars           varFlags
	targets        []string
	output, report string
}

func (a *app) preflightCommand() *cobra.Command {
	var o preflightRun
	cmd := &cobra.Command{
		Use:   "preflight [--ignore-preflight-errors a,b|all] [--fail-on-warnings] [--output text|json] PLAN",
		Short: "Run the plan's non-mutating checks",
		Long: `Runs the checks the plan's steps contribute, changing nothing: that the
image manifest resolves (no layers are pulled), that every artifact URL is
reachable (HEAD, falling back to a one-byte ranged GET), and that the machine
directory and the nspawn configuration directories can be written. Each check
has 10 seconds. Messages name the artifact and the host, never a path, query
or credentials. apply runs the same checks first, for the steps that need a
change.`,
		Example: `  rootfsctl preflight plans/kube-node.yaml --var machine=kube1
  rootfsctl preflight --ignore-preflight-errors cni-artifacts plans/kube-node.yaml
  rootfsctl preflight -o json plans/kube-node.yaml | jq .summary`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: planFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if o.output != "text" && o.output != "json" {
				return usagef("--output %q: use text or json", o.output)
			}
			rep := &engine.PreflightReport{Status: engine.OutcomeError}
			defer func() { err = a.emitPreflight(&o, rep, err) }()
			return a.preflight(cmd, args[0], &o, &rep)
		},
	}
	o.pf.register(cmd, false)
	o.vars.register(cmd)
	o.vars.registerMirror(cmd)
	cmd.Flags().StringArrayVar(&o.targets, "target", nil, "only the checks of this step and what it needs (repeatable)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text or json (one document, whatever the outcome)")
	cmd.Flags().StringVar(&o.report, "report", "", "also write the result as JSON to this file, whatever the outcome")
	a.registerPlanCompletions(cmd, &o.vars)
	a.registerCheckCompletion(cmd)
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("text", "json"))
	return cmd
}

// preflight checks the flags, loads the plan and runs its checks; *rep
// becomes the checks' report once they ran.
func (a *app) preflight(cmd *cobra.Command, file string, o *preflightRun, rep **engine.PreflightReport) error {
	if _, err := a.logger(); err != nil {
		return err
	}
	if err := checkNames(a.reg(), o.pf.ignore); err != nil {
		return err
	}
	if o.report != "" {
		if err := writable(o.report); err != nil {
			return usagef("--report %s: %v", o.report, err)
		}
	}
	_, g, err := a.loadPlan(file, &o.vars)
	if err != nil {
		if ds, ok := invalidPlan(err); ok {
			(*rep).Status, (*rep).Diagnostics = engine.OutcomeInvalid, ds
		}
		return a.failed(err)
	}
	r, err := engine.Preflight(cmd.Context(), g, engine.PreflightOptions{
		Ignore: o.pf.ignore, FailOnWarnings: o.pf.failOnWarnings, Targets: o.targets,
	})
	if r != nil {
		*rep = r
	}
	switch {
	case errors.Is(err, engine.ErrInterrupted):
		return &exitError{code: exitInterrupted, err: errors.New("interrupted; the checks that finished are above")}
	case err != nil:
		return err
	case (*rep).Status != engine.OutcomeOK:
		return &exitError{code: exitFailed, err: fmt.Errorf("%s: preflight failed", file)}
	}
	return nil
}

// emitPreflight prints the one result document (a table when there is
// something to show, or JSON) and writes --report; it returns the
// command's error, or the write's.
func (a *app) emitPreflight(o *preflightRun, rep *engine.PreflightReport, err error) error {
	if rep.Status == engine.OutcomeError && rep.Error == "" && err != nil {
		_, rep.Error = classify(err)
	}
	var werr error
	switch {
	case o.output == "json":
		werr = rep.WriteJSON(a.stdout)
	case len(rep.Checks) > 0 || rep.Status == engine.OutcomeOK:
		werr = rep.WriteTable(a.stdout)
	}
	if werr == nil && o.report != "" {
		var buf bytes.Buffer
		if werr = rep.WriteJSON(&buf); werr == nil {
			werr = writeFileAtomic(o.report, buf.Bytes())
		}
	}
	if err == nil {
		return werr
	}
	return err
}
