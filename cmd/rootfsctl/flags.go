package main

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rootfsctl/rootfsctl/engine"
)

// maxParallelism bounds -j, as the plan format bounds parallelism.
const maxParallelism = 1024

// usageArgs turns cobra's argument-count errors into usage errors that
// say what the command takes.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			use := strings.TrimPrefix(cmd.Use, cmd.Name())
			return usagef("%s takes%s, got %s", cmd.CommandPath(), argWords(use), plainArgs(len(args)))
		}
		return nil
	}
}

// argWords describes a command's arguments from its usage line: the
// upper-case words of its first form (PLAN, PLAN..., [TYPE]), not those
// of its flags ([-j N], [--target ID]..., --to DEST).
func argWords(use string) string {
	use, _, _ = strings.Cut(use, " | ")
	use = flagWithValue.ReplaceAllString(flagGroup.ReplaceAllString(use, ""), "")
	var words []string
	for _, w := range strings.Fields(use) {
		if argWord.MatchString(w) {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return " no arguments"
	}
	return " " + strings.Join(words, " ")
}

var (
	flagGroup     = regexp.MustCompile(`\[-[^\]]*\](\.\.\.)?`)
	flagWithValue = regexp.MustCompile(`--?[a-z][a-z-]* [^ ]+`)
)

var argWord = regexp.MustCompile(`^\[?[A-Z]+(\.\.\.)?\]?$`)

func plainArgs(n int) string {
	if n == 0 {
		return "none"
	}
	return engine.Plural(n, "argument")
}

// flagError makes pflag's errors usage errors a person can act on: an
// unknown flag gets a suggestion, a bad number loses strconv's words.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
		if s := engine.Suggest(name, names); s != "" {
			msg += strings.Replace(s, `"`, `"--`, 1)
		}
	}
	if i := strings.Index(msg, ": strconv."); i >= 0 {
		msg = msg[:i] + ": not a whole number"
	}
	return usagef("%s", msg)
}

// groupCommand makes a command that only groups others (cache,
// completion) refuse an unknown subcommand instead of printing its help
// and succeeding.
func groupCommand(c *cobra.Command) {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		var names []string
		for _, s := range cmd.Commands() {
			names = append(names, s.Name())
		}
		return usagef("%s %s: no such command%s (commands: %s)", cmd.CommandPath(), args[0], engine.Suggest(args[0], names), strings.Join(names, ", "))
	}
}

// helpCommand is help that refuses an unknown topic.
func (a *app) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		Long:  `Prints the help of rootfsctl or of one of its commands, the same as COMMAND --help.`,
		Example: `  rootfsctl help
  rootfsctl help apply
  rootfsctl help cache prune`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usagef("help %s: no such command; rootfsctl help lists them", strings.Join(args, " "))
			}
			return c.Help()
		},
	}
}

// exclusive refuses a command line that sets two flags that contradict
// each other.
func exclusive(cmd *cobra.Command, pairs ...[2]string) error {
	for _, p := range pairs {
		if cmd.Flags().Changed(p[0]) && cmd.Flags().Changed(p[1]) {
			return usagef("--%s and --%s contradict each other; use one", p[0], p[1])
		}
	}
	return nil
}

// parseSize reads a size: "10GiB", "500MB", "10G" (G and GB are 10^9,
// GiB is 2^30), "1024" (bytes). Negative sizes and sizes past 8 EiB are
// errors.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("%q: a size cannot be negative", s)
	}
	n, err := humanize.ParseBytes(t)
	if err != nil || t == "" {
		if strings.Contains(fmt.Sprint(err), "too large") {
			return 0, fmt.Errorf("%q is too large (sizes are less than 8EiB)", s)
		}
		return 0, fmt.Errorf("%q is not a size (use a number with a unit: 500MB, 10G, 10GiB)", s)
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large (sizes are less than 8EiB)", s)
	}
	if n == 0 && strings.Trim(strings.TrimRightFunc(t, unicode.IsLetter), "0. ") != "" {
		// 0.0000001GB: not what anyone means by "remove everything".
		return 0, fmt.Errorf("%q is less than a byte; write 0 if you mean nothing", s)
	}
	return int64(n), nil
}

// formatSize prints sizes in binary units, as cache info shows them.
func formatSize(n int64) string { return humanize.IBytes(uint64(n)) }

// checkNames validates --ignore-preflight-errors against the check names
// the step types declare.
func checkNames(reg *engine.Registry, names []string) error {
	known := reg.CheckNames()
	for _, n := range names {
		n = strings.TrimSpace(n)
		if strings.EqualFold(n, "all") {
			continue
		}
		found := false
		for _, k := range known {
			found = found || strings.EqualFold(k, n)
		}
		if !found {
			return usagef("--ignore-preflight-errors %s: no such check%s (checks: all, %s)", n,
				engine.Suggest(strings.ToLower(n), known), strings.Join(known, ", "))
		}
	}
	return nil
}

func fixedCompletions(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// planFileCompletion completes plan files by extension.
func planFileCompletion(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completionPlan loads the plan named on the command line being completed,
// quietly: completion offers nothing when there is no valid plan yet.
func (a *app) completionPlan(args []string, vars *varFlags) (*engine.Plan, bool) {
	if len(args) == 0 {
		return nil, false
	}
	opts, err := a.loadOptions(vars)
	if err != nil {
		return nil, false
	}
	p, err := engine.Load(args[0], opts)
	return p, err == nil
}

// registerPlanCompletions completes --target with the plan's step ids and
// --var with its variable names.
func (a *app) registerPlanCompletions(cmd *cobra.Command, vars *varFlags) {
	if cmd.Flags().Lookup("target") == nil {
		a.registerVarCompletion(cmd)
		return
	}
	a.registerVarCompletion(cmd)
	_ = cmd.RegisterFlagCompletionFunc("target", func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		p, ok := a.completionPlan(args, vars)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, s := range p.Steps {
			out = append(out, s.ID+"\t"+s.Type)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// registerVarCompletion completes --var with the plan's variables.
func (a *app) registerVarCompletion(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("var", func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		p, ok := a.completionPlan(args, &varFlags{})
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, name := range sortedKeys(p.Vars) {
			out = append(out, name+"=\t"+p.Vars[name])
		}
		if host, err := engine.GatherHost(); err == nil {
			for _, h := range []struct{ name, value string }{{"host.arch", host.Arch}, {"host.hostname", host.Hostname}, {"host.kernel", host.Kernel}, {"host.os", host.OS}} {
				out = append(out, h.name+"=\t"+h.value+" (host fact)")
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
}

// registerCheckCompletion completes --ignore-preflight-errors, a comma
// separated list, one name at a time.
func (a *app) registerCheckCompletion(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("ignore-preflight-errors", func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		prefix := ""
		if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
			prefix = toComplete[:i+1]
		}
		names := a.reg().CheckNames()
		if p, ok := a.completionPlan(args, &varFlags{}); ok {
			names = planChecks(a.reg(), p)
		}
		out := []string{prefix + "all"}
		for _, c := range names {
			out = append(out, prefix+c)
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// planChecks are the check names the plan's steps can contribute.
func planChecks(reg *engine.Registry, p *engine.Plan) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range p.Steps {
		if t, ok := reg.Lookup(s.Type); ok {
			for _, c := range t.Checks {
				if !seen[c] {
					seen[c] = true
					out = append(out, c)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// describeCompletion gives cobra's completion command and its
// subcommands the descriptions and examples every command has.
func describeCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Short = "Print a shell completion script"
		c.Long = `Prints a shell completion script. Completion knows the commands and
flags, the step types, and from the plan on the command line its step ids
(--target), variables (--var) and check names (--ignore-preflight-errors).`
		c.Example = `  source <(rootfsctl completion bash)
  rootfsctl completion zsh > "${fpath[1]}/_rootfsctl"
  rootfsctl completion fish > ~/.config/fish/completions/rootfsctl.fish`
		for _, sub := range c.Commands() {
			sub.Example = "  rootfsctl completion " + sub.Name() + " > rootfsctl." + sub.Name()
		}
	}
}
