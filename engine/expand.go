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
}

func newExpander(d *diags, vars *varResolver) *expander {
	return &expander{d: d, vars: vars, active: map[*yaml.Node]bool{},
		poisoned: map[*yaml.Node]bool{}, notes: map[*yaml.Node]string{}, expanded: map[*yaml.Node]bool{}}
}

// interpolate returns a deep copy of n with ${...} expanded in every scalar
// value. Mapping keys are left alone. Problems are reported at the scalar.
func (e *expander) interpolate(n *yaml.Node, name string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		target := resolveAlias(n)
		if e.active[target] {
			e.d.at(n, "%srecursive YAML alias *%s", pre(name), n.Value)
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

// scalar expands one scalar value into c, its copy.
func (e *expander) scalar(n, c *yaml.Node, name string) {
	refs, problem, at := scanRefs(n.Value)
	if problem != "" {
		e.d.atPos(refPos(e.d.file, n, at), "%s%s", pre(name), problem)
		e.poisoned[c] = true
		return
	}
	if len(n.Value) > maxValueBytes {
		// The same bound as for expanded values, whichever way a value
		// was written.
		e.d.at(n, "%sthe value is longer than %s", pre(name), byteSize(maxValueBytes))
		e.poisoned[c] = true
		return
	}
	if len(refs) == 0 && !strings.Contains(n.Value, "$${") {
		return
	}
	var from []string
	for _, rf := range refs {
		if _, ok := e.vars.resolve(rf.name); ok {
			from = appendNew(from, e.vars.from[rf.name]...)
			continue
		}
		e.poisoned[c] = true
		if !e.vars.defined(rf.name) {
			e.d.atPos(refPos(e.d.file, n, rf.offset), "%sundefined variable ${%s}%s", pre(name), rf.name, literalHint(rf.name, e.d.hints.suggest(rf.name, e.vars.allNames())))
		}
	}
	if e.poisoned[c] {
		return
	}
	v, _, tooLarge := substitute(n.Value, e.vars.resolve)
	if tooLarge {
		e.d.at(n, "%sexpands to more than %s; refusing to go on", pre(name), byteSize(maxValueBytes))
		e.poisoned[c] = true
		return
	}
	if !e.d.spendBytes(len(v), n) {
		e.poisoned[c] = true
		return
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
}
