package engine

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
)

// Host is the set of facts about the machine that plans may refer to as
// ${host.*}. It is gathered once, before loading, and never read again.
type Host struct {
	Arch     string // Go architecture name: amd64, arm64
	OS       string
	Hostname string
	Kernel   string // kernel release, as uname -r prints it
}

// GatherHost reads the facts of the machine this process runs on.
func GatherHost() (Host, error) {
	h := Host{Arch: runtime.GOARCH, OS: runtime.GOOS}
	var err error
	if h.Hostname, err = os.Hostname(); err != nil {
		return h, fmt.Errorf("read hostname: %w", err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return h, fmt.Errorf("read kernel release: %w", err)
	}
	h.Kernel = unix.ByteSliceToString(u.Release[:])
	return h, nil
}

func (h Host) vars() map[string]string {
	return map[string]string{
		"host.arch": h.Arch, "host.os": h.OS, "host.hostname": h.Hostname, "host.kernel": h.Kernel,
	}
}

// ref is one ${name} found in a string, at a byte offset.
type ref struct {
	name   string
	offset int
}

// scanRefs finds ${name} references in s. "$${" is an escaped literal "${".
// It returns an error message for an unterminated or empty reference.
func scanRefs(s string) (refs []ref, problem string, problemAt int) {
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			continue
		}
		if s[i+1] == '$' && i+2 < len(s) && s[i+2] == '{' {
			i += 2 // escaped: skip "$${"
			continue
		}
		if s[i+1] != '{' {
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return refs, "unterminated ${ (write $${ for a literal ${)", i
		}
		name := s[i+2 : i+2+end]
		if !validRefName(name) {
			return refs, fmt.Sprintf("invalid variable reference ${%s}", name), i
		}
		refs = append(refs, ref{name: name, offset: i})
		i += 2 + end
	}
	return refs, "", 0
}

func validRefName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || !(c == '.' || c == '-' || (c >= '0' && c <= '9'))) {
			return false
		}
	}
	return true
}

// expand replaces every ${name} in s with vals[name] and "$${" with "${".
// It assumes scanRefs found no problem and every name is defined.
func expand(s string, vals map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+2 < len(s) && s[i+1] == '$' && s[i+2] == '{' {
			b.WriteString("${")
			i += 2
			continue
		}
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '{' {
			end := strings.IndexByte(s[i+2:], '}')
			b.WriteString(vals[s[i+2:i+2+end]])
			i += 2 + end
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// refPos is the position of a byte offset inside a scalar node, exact for
// single-line plain and quoted scalars, the node's own position otherwise.
func refPos(file string, n *yaml.Node, offset int) Pos {
	p := nodePos(file, n)
	if strings.Contains(n.Value, "\n") {
		return p
	}
	switch n.Style {
	case 0, yaml.TaggedStyle:
		p.Col += len([]rune(n.Value[:offset]))
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if !strings.ContainsAny(n.Value[:offset], `\'"`) {
			p.Col += 1 + len([]rune(n.Value[:offset]))
		}
	}
	return p
}

// varResolver resolves the plan's vars, which may refer to each other and to
// the built-in variables, and reports undefined references and cycles.
type varResolver struct {
	d        *diags
	raw      map[string]*yaml.Node // declared vars (value nodes)
	keys     map[string]*yaml.Node // their key nodes, for positions
	builtins map[string]string
	resolved map[string]string
	state    map[string]int // 0 unvisited, 1 on the stack, 2 done
	stack    []string
}

func (r *varResolver) resolve(name string) (string, bool) {
	if v, ok := r.resolved[name]; ok {
		return v, true
	}
	n, declared := r.raw[name]
	if !declared {
		v, ok := r.builtins[name]
		return v, ok
	}
	switch r.state[name] {
	case 1:
		i := indexOf(r.stack, name)
		cycle := append(append([]string(nil), r.stack[i:]...), name)
		r.d.at(r.keys[r.stack[len(r.stack)-1]], "variable cycle: %s", strings.Join(cycle, " -> "))
		return "", false
	case 2:
		return "", false // failed before; already reported
	}
	r.state[name] = 1
	r.stack = append(r.stack, name)
	defer func() { r.stack = r.stack[:len(r.stack)-1]; r.state[name] = 2 }()

	refs, problem, at := scanRefs(n.Value)
	if problem != "" {
		r.d.atPos(refPos(r.d.file, n, at), "vars.%s: %s", name, problem)
		return "", false
	}
	vals := map[string]string{}
	ok := true
	for _, rf := range refs {
		v, found := r.resolve(rf.name)
		if !found {
			ok = false
			if _, known := r.raw[rf.name]; !known {
				if _, builtin := r.builtins[rf.name]; !builtin {
					r.d.atPos(refPos(r.d.file, n, rf.offset), "vars.%s: undefined variable ${%s}%s",
						name, rf.name, suggest(rf.name, r.allNames()))
				}
			}
			continue
		}
		vals[rf.name] = v
	}
	if !ok {
		return "", false
	}
	v := expand(n.Value, vals)
	r.resolved[name] = v
	return v, true
}

func (r *varResolver) allNames() []string {
	var out []string
	for k := range r.raw {
		out = append(out, k)
	}
	for k := range r.builtins {
		out = append(out, k)
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// maxPlanNodes bounds how many YAML nodes a plan may expand to, aliases
// included, so that "billion laughs" documents fail fast instead of eating
// memory.
const maxPlanNodes = 1_000_000

// expander copies step values with ${...} expanded. Aliases are expanded
// into copies; an alias that refers to a node it is inside of is an error.
type expander struct {
	d      *diags
	lookup func(string) (string, bool)
	names  func() []string
	active map[*yaml.Node]bool
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
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		n = target
	}
	if !e.d.spend(n) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	c := *n
	switch n.Kind {
	case yaml.ScalarNode:
		refs, problem, at := scanRefs(n.Value)
		if problem != "" {
			e.d.atPos(refPos(e.d.file, n, at), "%s%s", pre(name), problem)
			return &c
		}
		vals := map[string]string{}
		for _, rf := range refs {
			v, ok := e.lookup(rf.name)
			if !ok && contains(e.names(), rf.name) {
				continue // declared, but its own definition failed: reported there
			}
			if !ok {
				e.d.atPos(refPos(e.d.file, n, rf.offset), "%sundefined variable ${%s}%s", pre(name), rf.name, suggest(rf.name, e.names()))
				continue
			}
			vals[rf.name] = v
		}
		if len(vals) == len(refs) {
			c.Value = expand(n.Value, vals)
			if c.Value != n.Value && c.Tag != "!!str" {
				c.Tag = "" // the text changed; its YAML type is whatever the field wants
			}
		}
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
