package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
)

// Small plans that once cost unbounded time or memory to validate.

// parseWithin parses src, failing the test when that takes longer than
// limit (the parse is left running then).
func parseWithin(t *testing.T, limit time.Duration, name, src string) engine.Diagnostics {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := engine.Parse(name, []byte(src), engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost})
		done <- err
	}()
	select {
	case err := <-done:
		var ds engine.Diagnostics
		if !errors.As(err, &ds) {
			t.Fatalf("Parse(%s): %v, want diagnostics", name, err)
		}
		return ds
	case <-time.After(limit):
		t.Fatalf("Parse(%s) of a %d KB plan did not finish in %s", name, len(src)>>10, limit)
	}
	return nil
}

// TestSuggestionsHaveABudget: "did you mean" compares each undefined name
// with every variable. 4,000 undefined references among 4,000 variables,
// all of 60-byte names (a 520 KB plan), would take 60 billion cells of
// edit distance; the plan is validated at once, the first references
// still with a suggestion.
func TestSuggestionsHaveABudget(t *testing.T) {
	t.Parallel()
	const n = 4000
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: hints\nvars:\n")
	for i := range n {
		fmt.Fprintf(&b, "  v%059d: x\n", i)
	}
	for j := range n / 50 {
		b.WriteString("  w" + fmt.Sprint(j) + ": \"")
		for k := range 50 {
			fmt.Fprintf(&b, "${u%059d}", j*50+k)
		}
		b.WriteString("\"\n")
	}
	b.WriteString("steps:\n  a: {type: run, with: {command: [\"true\"]}}\n")
	ds := parseWithin(t, 30*time.Second, "hints.yaml", b.String())
	undefined, hinted := 0, 0
	for _, d := range ds {
		if strings.Contains(d.Message, "undefined variable") {
			undefined++
		}
		if strings.Contains(d.Message, "did you mean") {
			hinted++
		}
	}
	if undefined == 0 || hinted == 0 || hinted == undefined {
		t.Errorf("%d undefined references reported, %d with a suggestion; want some, not all, with one", undefined, hinted)
	}
}

// TestAliasedProblemsAreReportedOnce: a scalar with 50 undefined
// references, used 30,000 times through aliases in lists of lists (a 1 KB
// plan), is reported once per reference, and the list that is no string
// once, not a million times.
func TestAliasedProblemsAreReportedOnce(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: aliased\nx-s: &s \"")
	for i := range 50 {
		fmt.Fprintf(&b, "${u%d}", i)
	}
	b.WriteString("\"\nx-l: &l [" + strings.Repeat("*s, ", 99) + "*s]\n")
	b.WriteString("x-m: &m [" + strings.Repeat("*l, ", 99) + "*l]\n")
	b.WriteString("steps: {a: {type: run, with: {command: [*m, *m]}}, b: {type: run, with: {command: [*m]}}}\n")
	ds := parseWithin(t, 30*time.Second, "aliased.yaml", b.String())
	if len(ds) != 51 {
		t.Fatalf("%d diagnostics; want 51, one per undefined reference and one for the list; the last: %s", len(ds), ds[len(ds)-1])
	}
	for i, d := range ds[:50] {
		if want := fmt.Sprintf("undefined variable ${u%d}", i); !strings.Contains(d.Message, want) {
			t.Errorf("diagnostic %d: %s; want it about ${u%d}", i, d, i)
		}
	}
	if want := "aliased.yaml:6:6: a.with.command[0]: expected a string, got a list"; ds[50].String() != want {
		t.Errorf("diagnostic 50: %s; want %s", ds[50], want)
	}
}

// TestDiagnosticsAreCapped: a plan with 1,200 distinct problems, each
// reached twice through merge keys, lists the first 1,000 and ends with
// one line counting the other 200 (not 1,400), whatever sorting does.
func TestDiagnosticsAreCapped(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: capped\nx-m: &m\n")
	for i := range 1200 {
		fmt.Fprintf(&b, "  k%d: 1\n", i)
	}
	b.WriteString("steps:\n  a: {<<: *m, type: run, with: {command: [\"true\"]}}\n  b: {<<: *m, type: run, with: {command: [\"true\"]}}\n")
	ds := parseWithin(t, 30*time.Second, "capped.yaml", b.String())
	if len(ds) != 1001 {
		t.Fatalf("%d diagnostics; want 1,000 and one counting the rest", len(ds))
	}
	if n := ds.Count(); n != 1200 {
		t.Errorf("Count() = %d; want the 1,200 problems, listed or not", n)
	}
	last := ds.Sort()[1000]
	if last.Message != "and 200 more problems not listed (the first 1000 found are)" || last.File != "capped.yaml" {
		t.Errorf("last diagnostic: %s", last)
	}
}

// TestLongMessagesAreShortened: a message quoting a 100 KB value keeps
// its beginning and its end.
func TestLongMessagesAreShortened(t *testing.T) {
	t.Parallel()
	src := "apiVersion: rootfsctl/v1\nkind: Plan\nname: long\nsteps:\n  a:\n    type: run\n    with:\n      command: [\"true\"]\n      ? " +
		strings.Repeat("q", 100_000) + "\n      : 1\n"
	ds := parseWithin(t, 30*time.Second, "long.yaml", src)
	if len(ds) != 1 || len(ds[0].Message) > 4200 || !strings.HasPrefix(ds[0].Message, "a.with: unknown field \"qqq") ||
		!strings.HasSuffix(ds[0].Message, "qqq\"") {
		t.Errorf("got %d diagnostics, the first of %d bytes: %.300s", len(ds), len(ds[0].Message), ds[0])
	}
}

// TestAliasedLiteralsCountAgainstTheBudget: the 32 MiB bound on a plan's
// values holds for values written out and repeated through aliases as for
// variables: a 512 KiB literal used 56 times (28 MiB) loads; used 70 times
// (35 MiB) as a value, a map key or a needs entry, it is refused once,
// with the bound named.
func TestAliasedLiteralsCountAgainstTheBudget(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("q", 512<<10)
	plan := func(uses int, step string) string {
		var b strings.Builder
		b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: wide\nx-a: &a " + big + "\nx-e: &e {*a : x}\nsteps:\n")
		for i := range uses {
			fmt.Fprintf(&b, "  s%d: "+step+"\n", i, i)
		}
		return b.String()
	}
	opts := engine.LoadOptions{Registry: newRegistry(newTracker()), Host: testHost}
	if _, err := engine.Parse("wide.yaml", []byte(plan(56, "{type: file, with: {path: /tmp/x%d, content: *a}}")), opts); err != nil {
		t.Errorf("28 MiB of values: %v, want it loaded", err)
	}
	for _, step := range []string{
		"{type: file, with: {path: /tmp/x%d, content: *a}}",
		"{type: run, with: {command: [\"true\", \"%d\"], env: *e}}",
		"{type: run, needs: [*a], with: {command: [\"true\", \"%d\"]}}",
	} {
		_, err := engine.Parse("wide.yaml", []byte(plan(70, step)), opts)
		if err == nil || strings.Count(err.Error(), "plan expands to more than 32 MiB of values") != 1 {
			t.Errorf("%s 70 times: got %.300v, want one error naming the 32 MiB bound", step, err)
		}
	}
}

// TestSharedNeedsAreReportedOnce: a list of needs shared by many steps
// through an alias is reported once per bad entry, under the first step
// that uses it, and the same for a shared step type.
func TestSharedNeedsAreReportedOnce(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("apiVersion: rootfsctl/v1\nkind: Plan\nname: shared\nx-n: &n [nope, nada]\nx-t: &t rnu\nsteps:\n")
	for i := range 300 {
		fmt.Fprintf(&b, "  s%d: {type: *t, needs: *n}\n", i)
	}
	ds := parseWithin(t, 30*time.Second, "shared.yaml", b.String())
	want := `shared.yaml:4:10: s0: needs unknown step "nope"
shared.yaml:4:16: s0: needs unknown step "nada"
shared.yaml:5:6: s0: unknown step type "rnu" (did you mean "run"?)`
	if ds.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", ds.Error(), want)
	}
}
