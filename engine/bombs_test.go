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
// edit distance; the plan is validated at once, every reference reported,
// the first ones still with a suggestion.
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
