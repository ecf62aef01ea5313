package main

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
)

func (a *app) preflightCommand() *cobra.Command {
	var pf preflightFlags
	var vars varFlags
	var targets []string
	var output, report string
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
			if output != "text" && output != "json" {
				return usagef("--output %q: use text or json", output)
			}
			rep := &engine.PreflightReport{Status: engine.OutcomeError}
			defer func() {
				if rep.Status == engine.OutcomeError && rep.Error == "" && err != nil {
					_, rep.Error = classify(err)
				}
				var werr error
				switch {
				case output == "json":
					werr = rep.WriteJSON(a.stdout)
				case len(rep.Checks) > 0 || rep.Status == engine.OutcomeOK:
					werr = rep.WriteTable(a.stdout)
				}
				if werr == nil && report != "" {
					var buf bytes.Buffer
					if werr = rep.WriteJSON(&buf); werr == nil {
						werr = writeFileAtomic(report, buf.Bytes())
					}
				}
				if werr != nil && err == nil {
					err = werr
				}
			}()
			if _, err := a.logger(); err != nil {
				return err
			}
			if err := checkNames(a.reg(), pf.ignore); err != nil {
				return err
			}
			if report != "" {
				if err := writable(report); err != nil {
					return usagef("--report %s: %v", report, err)
				}
			}
			_, g, err := a.loadPlan(args[0], &vars)
			if err != nil {
				var ip *errInvalidPlan
				if errors.As(err, &ip) {
					rep.Status, rep.Diagnostics = engine.OutcomeInvalid, ip.ds
				}
				return a.failed(err)
			}
			r, err := engine.Preflight(cmd.Context(), g, engine.PreflightOptions{
				Ignore: pf.ignore, FailOnWarnings: pf.failOnWarnings, Targets: targets,
			})
			if r != nil {
				rep = r
			}
			switch {
			case errors.Is(err, engine.ErrInterrupted):
				return &exitError{code: exitInterrupted, err: errors.New("interrupted; the checks that finished are above")}
			case err != nil:
				return err
			case rep.Status != engine.OutcomeOK:
				return &exitError{code: exitFailed, err: fmt.Errorf("%s: preflight failed", args[0])}
			}
			return nil
		},
	}
	pf.register(cmd, false)
	vars.register(cmd)
	cmd.Flags().StringArrayVar(&targets, "target", nil, "only the checks of this step and what it needs (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (one document, whatever the outcome)")
	cmd.Flags().StringVar(&report, "report", "", "also write the result as JSON to this file, whatever the outcome")
	a.registerPlanCompletions(cmd, &vars)
	a.registerCheckCompletion(cmd)
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("text", "json"))
	return cmd
}
