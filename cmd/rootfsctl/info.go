package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
)

func (a *app) stepsCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "steps [TYPE]",
		Short: "List the step types, or document one",
		Long: `Without an argument, lists every step type a plan can use with a one-line
summary. With a type, prints its documentation and every parameter under
with: its type, default and description, generated from the same Go struct
that decodes and validates plans and generates the JSON Schema.`,
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
				return usagef("--output %q: use text or json", output)
			}
			types := a.reg().Types()
			if len(args) == 1 {
				t, ok := a.reg().Lookup(args[0])
				if !ok {
					names := make([]string, len(types))
					for i, t := range types {
						names[i] = t.Name
					}
					return usagef("unknown step type %q%s; rootfsctl steps lists them", args[0], engine.Suggest(args[0], names))
				}
				types = []*engine.StepType{t}
			}
			if output == "json" {
				return a.stepsJSON(types)
			}
			if len(args) == 0 {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TYPE\tSUMMARY")
				for _, t := range types {
					fmt.Fprintf(tw, "%s\t%s\n", t.Name, t.Summary)
				}
				return tw.Flush()
			}
			return a.stepDoc(types[0])
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", fixedCompletions("text", "json"))
	return cmd
}

func (a *app) stepsJSON(types []*engine.StepType) error {
	type typeDoc struct {
		Name    string            `json:"name"`
		Summary string            `json:"summary"`
		Doc     string            `json:"doc"`
		Checks  []string          `json:"checks,omitempty"`
		Params  []engine.ParamDoc `json:"params"`
	}
	var out []typeDoc
	for _, t := range types {
		out = append(out, typeDoc{t.Name, t.Summary, t.Doc, t.Checks, t.Params()})
	}
	return writeJSONDoc(a.stdout, out)
}

func (a *app) stepDoc(t *engine.StepType) error {
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
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(t.Checks) > 0 {
		_, err := fmt.Fprintf(a.stdout, "\nPREFLIGHT CHECKS: %s\n", strings.Join(t.Checks, ", "))
		return err
	}
	return nil
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
