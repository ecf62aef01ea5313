package engine

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxPlanNodes bounds how many YAML nodes a plan may expand to, aliases
// included, so that "billion laughs" documents fail fast instead of eating
// memory.
const maxPlanNodes = 1_000_000

// expander copies step values with ${...} expanded. Aliases are expanded
// into copies; an alias that refers to a node it is inside of is an error.
type expander struct {
	d      *diags
	vars   *varResolver
	active map[*yaml.Node]bool
	// poisoned holds copies whose value could not be expanded because a
	// variable they use failed (reported at the variable): checking them
	// would only repeat that problem.
	poisoned map[*yaml.Node]bool
	// notes holds copies whose value came from overrides, for messages.
	notes map[*yaml.Node]string
	// expanded holds copies whose value was written with references.
	expanded map[*yaml.Node]bool
	// literal: copy values as written, without expanding them (type and
	// needs), only counting them.
	literal bool
}

func newExpander(d *diags, vars *varResolver) *expander {
	return &expander{d: d, vars: vars, active: map[*yaml.Node]bool{},
		poisoned: map[*yaml.Node]bool{}, notes: map[*yaml.Node]string{}, expanded: map[*yaml.Node]bool{}}
}

// interpolate returns a deep copy of n with ${...} expanded in every scalar
// value. Mapping keys are left alone. Problems are reported at the scalar.
// Every key and value copied counts against the plan's budgets, literal
// or expanded, however many aliases repeat it.
func (e *expander) interpolate(n *yaml.Node, name string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		target := resolveAlias(n)
		if e.active[target] {
			e.d.named(nodePos(e.d.file, n), name, "recursive YAML alias *%s", n.Value)
			stand := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
			e.poisoned[stand] = true // what stands in for it is not the user's value
			return stand
		}
		n = target
	}
	if !e.d.spend(n) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	c := *n
	switch n.Kind {
	case yaml.ScalarNode:
		e.scalar(n, &c, name)
	case yaml.MappingNode:
		e.active[n] = true
		defer delete(e.active, n)
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			if i%2 == 0 {
				c.Content[i] = ch
				e.d.spendBytes(len(resolveAlias(ch).Value), ch)
			} else {
				c.Content[i] = e.interpolate(ch, joinName(name, n.Content[i-1].Value))
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		e.active[n] = true
		defer delete(e.active, n)
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, ch := range n.Content {
			c.Content[i] = e.interpolate(ch, fmt.Sprintf("%s[%d]", name, i))
		}
	}
	return &c
}

// scalar expands one scalar value into c, its copy. A value that failed
// is reported once, at its first use: a use through an alias fails again
// without a word.
func (e *expander) scalar(n, c *yaml.Node, name string) {
	if e.literal {
		if !e.literalScalar(n, name) {
			e.poisoned[c] = true
		}
		return
	}
	if e.d.badScalars[n] {
		e.poisoned[c] = true
		return
	}
	if !e.expandScalar(n, c, name) {
		e.poisoned[c] = true
		if e.d.badScalars == nil {
			e.d.badScalars = map[*yaml.Node]bool{}
		}
		e.d.badScalars[n] = true
	}
}

// literalScalar checks the size of a value copied as written.
func (e *expander) literalScalar(n *yaml.Node, name string) bool {
	if len(n.Value) > maxValueBytes {
		e.d.named(nodePos(e.d.file, n), name, "the value is longer than %s", byteSize(maxValueBytes))
		return false
	}
	return e.d.spendBytes(len(n.Value), n)
}

// expandScalar is scalar for a value not seen to fail; it reports false
// when the value cannot be expanded, the problem reported.
func (e *expander) expandScalar(n, c *yaml.Node, name string) bool {
	refs, problem, at := scanRefs(n.Value)
	if problem != "" {
		e.d.named(refPos(e.d.file, n, at), name, "%s", problem)
		return false
	}
	if len(n.Value) > maxValueBytes {
		// The same bound as for expanded values, whichever way a value
		// was written.
		e.d.named(nodePos(e.d.file, n), name, "the value is longer than %s", byteSize(maxValueBytes))
		return false
	}
	v, from := n.Value, []string(nil)
	if len(refs) > 0 || strings.Contains(n.Value, "$${") {
		var ok, tooLarge bool
		if from, ok = e.resolveRefs(n, refs, name); !ok {
			return false
		}
		if v, _, tooLarge = substitute(n.Value, e.vars.resolve); tooLarge {
			e.d.named(nodePos(e.d.file, n), name, "expands to more than %s; refusing to go on", byteSize(maxValueBytes))
			return false
		}
	}
	if !e.d.spendBytes(len(v), n) {
		return false
	}
	c.Value = v
	if len(refs) > 0 {
		// Text written with references; the field decides what it means.
		c.Tag, c.Style = "!!str", 0
		e.expanded[c] = true
	}
	if len(from) > 0 {
		e.notes[c] = " (value from " + strings.Join(from, ", ") + ")"
	}
	return true
}

// resolveRefs resolves the references of the scalar n, reporting those
// undefined, and returns the overrides their values come from.
func (e *expander) resolveRefs(n *yaml.Node, refs []ref, name string) (from []string, ok bool) {
	ok = true
	for _, rf := range refs {
		if _, found := e.vars.resolve(rf.name); found {
			from = appendNew(from, e.vars.from[rf.name]...)
			continue
		}
		ok = false
		if !e.vars.defined(rf.name) {
			e.d.hinted(refPos(e.d.file, n, rf.offset), name, func() string {
				return literalHint(rf.name, e.d.hints.suggest(rf.name, e.vars.allNames()))
			}, "undefined variable ${%s}", rf.name)
		}
	}
	return from, ok
}
