package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// scenario is one command line and the exit code the README promises for it.
type scenario struct {
	name string
	args func(dir string) []string
	// ctx, when set, gives the context the command runs under.
	ctx func(t *testing.T, dir string) context.Context
	// says, when set, is part of what stderr must say.
	says string
}

const slowStep = `  slow:
    type: run
    with: {command: [sh, -c, 'touch ${out}.started; sleep 30']}
`

// exitScenarios hold every row of the README's exit-code table to at
// least one command line each (several for the rows that name several causes).
var exitScenarios = map[int][]scenario{
	exitOK: {
		{name: "apply succeeds", args: func(d string) []string { return []string{"apply", writePlan(nil, d, twoFiles)} }},
		{name: "validate a valid plan", args: func(d string) []string { return []string{"validate", writePlan(nil, d, twoFiles)} }},
	},
	exitFailed: {
		{name: "invalid plan", args: func(d string) []string {
			return []string{"apply", writePlan(nil, d, "  a: {type: file, with: {path: relative}}\n")}
		}},
		{name: "failed preflight", args: func(d string) []string {
			return []string{"apply", "../../plans/demo.yaml", "--var", "registry=127.0.0.1:1", "--var", "mirror=http://127.0.0.1:1", "--var", "out=" + d}
		}},
		{name: "a step failed", args: func(d string) []string {
			return []string{"apply", writePlan(nil, d, "  boom: {type: run, with: {command: [\"false\"]}}\n")}
		}},
		{name: "a step was blocked", args: func(d string) []string {
			return []string{"apply", "--keep-going", writePlan(nil, d, "  boom: {type: run, with: {command: [\"false\"]}}\n  after: {type: run, needs: [boom], with: {command: [\"true\"]}}\n")}
		}},
		{name: "an I/O error (the plan file is missing)", args: func(d string) []string {
			return []string{"apply", filepath.Join(d, "missing.yaml")}
		}},
		{name: "the plan file is a directory", args: func(d string) []string { return []string{"validate", d} }},
		{name: "the plan file is a fifo (refused, not waited on)", args: func(d string) []string {
			fifo := filepath.Join(d, "plan.yaml")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				panic(err) // a temporary directory of the test's own
			}
			return []string{"apply", fifo}
		}, says: "not a regular file"},
		{name: "another run holds the machine", args: func(d string) []string {
			return append([]string{"apply", "--skip-preflight"}, holdVars(d)...)
		}, ctx: holdMachine, says: "is being provisioned by another rootfsctl"},
	},
	exitChanges: {
		{name: "plan --detailed-exitcode with changes", args: func(d string) []string {
			return []string{"plan", "--detailed-exitcode", writePlan(nil, d, twoFiles)}
		}},
	},
	exitUsage: {
		{name: "unknown command", args: func(string) []string { return []string{"frobnicate"} }},
		{name: "unknown flag", args: func(d string) []string { return []string{"apply", "--nope", writePlan(nil, d, twoFiles)} }},
		{name: "missing argument", args: func(string) []string { return []string{"apply"} }},
		{name: "too many arguments", args: func(string) []string { return []string{"graph", "a.yaml", "b.yaml"} }},
		{name: "-j 0", args: func(d string) []string { return []string{"apply", "-j", "0", writePlan(nil, d, twoFiles)} }},
		{name: "-j past the maximum", args: func(d string) []string { return []string{"plan", "-j", "5000", writePlan(nil, d, twoFiles)} }},
		{name: "bad --output", args: func(d string) []string { return []string{"apply", "-o", "xml", writePlan(nil, d, twoFiles)} }},
		{name: "unknown --target", args: func(d string) []string {
			return []string{"apply", "--target", "aa", writePlan(nil, d, twoFiles)}
		}},
		{name: "undeclared --var", args: func(d string) []string {
			return []string{"plan", "--var", "outt=x", writePlan(nil, d, twoFiles)}
		}},
		{name: "--var without =", args: func(d string) []string { return []string{"validate", "--var", "out", writePlan(nil, d, twoFiles)} }},
		{name: "unknown preflight check", args: func(d string) []string {
			return []string{"apply", "--ignore-preflight-errors", "cni-artifact", writePlan(nil, d, twoFiles)}
		}},
		{name: "conflicting flags", args: func(d string) []string {
			return []string{"apply", "--skip-preflight", "--fail-on-warnings", writePlan(nil, d, twoFiles)}
		}},
		{name: "negative size", args: func(d string) []string {
			return []string{"apply", "--cache-max-size", "-1", writePlan(nil, d, twoFiles)}
		}},
		{name: "overflowing size", args: func(string) []string { return []string{"cache", "prune", "--max-size", "9999999TiB"} }},
		{name: "a size under a byte", args: func(string) []string { return []string{"cache", "prune", "--max-size", "0.0000001"} }},
		{name: "a log level zerolog has but the README does not", args: func(d string) []string {
			return []string{"validate", "--log-level", "trace", writePlan(nil, d, twoFiles)}
		}},
		{name: "--all with --max-size", args: func(string) []string { return []string{"cache", "prune", "--all", "--max-size", "1GiB"} }},
		{name: "unknown step type", args: func(string) []string { return []string{"steps", "fiel"} }},
		{name: "--report into a missing directory (checked before anything is done)", args: func(d string) []string {
			return []string{"apply", "--report", filepath.Join(d, "missing", "r.json"), writePlan(nil, d, twoFiles)}
		}},
	},
	exitInterrupted: {
		{name: "interrupted while a step runs", args: func(d string) []string { return []string{"apply", writePlan(nil, d, slowStep)} },
			ctx: func(t *testing.T, d string) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					defer cancel()
					for range 3000 {
						if _, err := os.Stat(filepath.Join(d, "out.started")); err == nil {
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
					t.Error("the slow step never started")
				}()
				return ctx
			}},
	},
}

// readmeExitCodes reads the codes of the README's exit-code table.
func readmeExitCodes(t *testing.T) []int {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "### Exit codes")
	if !ok {
		t.Fatal("README has no '### Exit codes' section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(section, -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	return codes
}

// TestExitCodeTable runs, for every row of the README's exit-code table,
// the command lines that must end with that code, and fails when the table
// and the scenarios list different codes.
func TestExitCodeTable(t *testing.T) {
	t.Parallel()
	codes := readmeExitCodes(t)
	var covered []int
	for c := range exitScenarios {
		covered = append(covered, c)
	}
	sort.Ints(codes)
	sort.Ints(covered)
	if !slicesEqual(codes, covered) {
		t.Fatalf("README lists exit codes %v, the scenarios cover %v", codes, covered)
	}
	for code, list := range exitScenarios {
		for _, sc := range list {
			t.Run(strconv.Itoa(code)+"/"+sc.name, func(t *testing.T) {
				dir := t.TempDir()
				ctx := context.Background()
				if sc.ctx != nil {
					ctx = sc.ctx(t, dir)
				}
				got, out, errOut := cli(t, ctx, sc.args(dir)...)
				if got != code || !strings.Contains(errOut, sc.says) {
					t.Errorf("exit %d, want %d (saying %q)\nstdout:\n%s\nstderr:\n%s", got, code, sc.says, out, errOut)
				}
			})
		}
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCompletion: --target, --var and --ignore-preflight-errors complete
// from the plan on the command line and the declared checks.
func TestCompletion(t *testing.T) {
	t.Parallel()
	plan := writePlan(t, t.TempDir(), twoFiles)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"apply", plan, "--target", ""}, []string{"a\tfile", "b\tfile"}},
		{[]string{"plan", plan, "--var", ""}, []string{"out=\t"}},
		{[]string{"graph", plan, "--var", "o"}, []string{"out=\t"}},
		{[]string{"apply", "../../plans/demo.yaml", "--ignore-preflight-errors", "cni-artifacts,"}, []string{"cni-artifacts,kubernetes-artifacts", "cni-artifacts,all"}},
		{[]string{"preflight", "../../plans/demo.yaml", "--ignore-preflight-errors", ""}, []string{"oci-image-reachable", "nspawn-machine-provisioning"}},
		{[]string{"plan", plan, "--var", "host."}, []string{"host.arch=\t"}},
		{[]string{"steps", ""}, []string{"download-kube\t"}},
	} {
		_, out, _ := cli(t, context.Background(), append([]string{cobra.ShellCompRequestCmd}, tc.args...)...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("completing %q: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

var cleanArgWords = regexp.MustCompile(`^( no arguments|( \[?[A-Z]+(\.\.\.)?\]?)+)$`)

// TestEveryCommandHasExamples keeps the README's promise that every
// command's --help has a description and examples, completion included.
func TestEveryCommandHasExamples(t *testing.T) {
	t.Parallel()
	root := newApp(&bytes.Buffer{}, &bytes.Buffer{}).rootCommand()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Hidden {
				continue
			}
			if sub.Example == "" {
				t.Errorf("rootfsctl %s has no examples in its help", sub.CommandPath())
			}
			if sub.Long == "" {
				t.Errorf("rootfsctl %s has no description in its help", sub.CommandPath())
			}
			// What an argument-count error says the command takes.
			if w := argWords(strings.TrimPrefix(sub.Use, sub.Name())); !cleanArgWords.MatchString(w) {
				t.Errorf("rootfsctl %s: an argument-count error would say it takes%s", sub.CommandPath(), w)
			}
			walk(sub)
		}
	}
	walk(root)
}

// TestSizes: sizes parse in the usual spellings, and overflow and negative
// values are refused.
func TestSizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"10G": 10e9, "10GiB": 10 << 30, "500MB": 500e6, "1024": 1024, "0": 0, "1.5 GiB": 3 << 29, "8EiB": -1, "9999999TiB": -1, "-1": -1, "lots": -1, "": -1, "0.0000001": -1, "0.0GiB": 0, "0.5": -1} {
		got, err := parseSize(in)
		switch {
		case want < 0 && err == nil:
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		case want >= 0 && (err != nil || got != want):
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// holdVars point the demo plan at a registry that never answers, so an
// apply holds its machine's lock while it waits for the image.
var holeAddr string

func holdVars(dir string) []string {
	return []string{"../../plans/demo.yaml", "--var", "registry=" + holeAddr, "--var", "mirror=http://" + holeAddr, "--var", "out=" + dir}
}

// holdMachine starts another apply of the same machine and returns once it
// holds the lock; the holder is stopped when the test ends.
func holdMachine(t *testing.T, dir string) context.Context {
	holeAddr = blackHole(t)
	bin := buildBinary(t)
	holder := exec.Command(bin, append([]string{"apply", "--skip-preflight", "--log-format", "json", "--log-level", "debug", "--cache-dir", t.TempDir()}, holdVars(dir)...)...)
	stderr, err := holder.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Signal(syscall.SIGINT)
		_ = holder.Wait()
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"phase":"pull"`) {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return context.Background()
		}
	}
	t.Fatal("the holding apply ended before it took the lock")
	return nil
}

// TestUnwritableReportChangesNothing: a --report that cannot be written is
// refused before any step runs.
func TestUnwritableReportChangesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, _, errOut := cli(t, context.Background(), "apply", "--report", filepath.Join(dir, "missing", "r.json"), writePlan(t, dir, twoFiles))
	if code != exitUsage || !strings.Contains(errOut, "--report "+filepath.Join(dir, "missing", "r.json")) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("the plan ran although its report could not be written: %v", err)
	}
}

// TestValidateManyPlansWithOneSetOfVars: a --var need only be declared by
// one of the plans validated together; one that none declares is an error.
func TestValidateManyPlansWithOneSetOfVars(t *testing.T) {
	t.Parallel()
	a := writePlan(t, t.TempDir(), twoFiles) // declares out
	b := filepath.Join(t.TempDir(), "b.yaml")
	if err := os.WriteFile(b, []byte("apiVersion: rootfsctl/v1\nkind: Plan\nname: b\nsteps:\n  x: {type: file, with: {path: /tmp/x}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, context.Background(), "validate", a, b, "--var", "out=/tmp/o", "--var", "out=/tmp/p"); code != exitOK {
		t.Errorf("a var one plan declares: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := cli(t, context.Background(), "validate", a, b, "--var", "nobody=x")
	if code != exitUsage || !strings.Contains(errOut, `--var nobody: no plan declares a variable`) {
		t.Errorf("a var no plan declares: exit %d, %s", code, errOut)
	}
}

// TestValidateSuggestsAVariable: validate, like the other commands, says
// which declared variable an unknown --var may mean.
func TestValidateSuggestsAVariable(t *testing.T) {
	t.Parallel()
	plan := writePlan(t, t.TempDir(), twoFiles)
	code, _, stderr := cli(t, context.Background(), "validate", "--var", "oot=/x", plan)
	if code != exitUsage || !strings.Contains(stderr, `did you mean \"out\"?`) {
		t.Errorf("validate --var oot: exit %d\n%s", code, stderr)
	}
}

// TestDetailedExitCodeIsNotAnError: plan --detailed-exitcode exits 2 when
// something would change and logs no error for it.
func TestDetailedExitCodeIsNotAnError(t *testing.T) {
	t.Parallel()
	plan := writePlan(t, t.TempDir(), twoFiles)
	code, _, stderr := cli(t, context.Background(), "plan", "--detailed-exitcode", plan)
	if code != exitChanges || strings.Contains(stderr, `"level":"error"`) {
		t.Errorf("plan --detailed-exitcode: exit %d\n%s", code, stderr)
	}
}
