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

// Expansion budgets. Variables may refer to each other, so a small plan can
// describe a huge value ("${a}${a}" doubled thirty times); these bound the
// memory and time any plan can cost.
const (
	// maxValueBytes bounds one expanded value: a variable or a step's scalar.
	maxValueBytes = 1 << 20
	// maxExpandedBytes bounds all expanded values of one plan together
	// (aliases can repeat one value many times).
	maxExpandedBytes = 32 << 20
)

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
			return refs, fmt.Sprintf("invalid variable reference ${%s} (write $${ for a literal ${, as a shell needs)", name), i
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

// substitute replaces every ${name} in s with value(name) and "$${" with
// "${", in one pass. It assumes scanRefs found no problem. It stops with ok
// false when a reference has no value, and with tooLarge when the result
// would pass maxValueBytes.
func substitute(s string, value func(name string) (string, bool)) (out string, ok, tooLarge bool) {
	if !strings.Contains(s, "$") {
		return s, true, false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+2 < len(s) && s[i+1] == '$' && s[i+2] == '{':
			b.WriteString("${")
			i += 2
		case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
			end := strings.IndexByte(s[i+2:], '}')
			v, found := value(s[i+2 : i+2+end])
			if !found {
				return "", false, false
			}
			if b.Len()+len(v) > maxValueBytes {
				return "", false, true
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
		if b.Len() > maxValueBytes {
			return "", false, true
		}
	}
	return b.String(), true, false
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

// VarOverride is a variable value given outside the plan file. Origin says
// where, in the words messages should use (cmd passes "--var machine" or
// "site.yaml:3"); the engine never names a flag itself.
type VarOverride struct {
	Name, Value, Origin string
	// Optional overrides (from the environment) are skipped when the plan
	// does not declare the name; others are errors then.
	Optional bool
}

// UnknownVarError says overrides name variables the plan does not declare
// (and that are not host facts). Callers treat it as bad input.
type UnknownVarError struct {
	Unknown []VarOverride
	Known   []string // the plan's variables, for suggestions
}

func (e *UnknownVarError) Error() string {
	parts := make([]string, len(e.Unknown))
	var h hints
	for i, o := range e.Unknown {
		parts[i] = fmt.Sprintf("%s: the plan declares no variable %q%s", o.Origin, o.Name, h.suggest(o.Name, e.Known))
	}
	return strings.Join(parts, "; ")
}

// varResolver resolves the plan's vars, which may refer to each other and to
// the built-in variables, and reports undefined references, cycles and
// values that grow past the budget, each once, at the variable's definition.
type varResolver struct {
	d        *diags
	raw      map[string]*yaml.Node // declared vars (value nodes)
	keys     map[string]*yaml.Node // their key nodes, for positions
	origin   map[string]string     // overridden vars: where their value came from
	builtins map[string]string
	resolved map[string]string
	// from lists, per resolved var, the overrides its value depends on.
	from  map[string][]string
	state map[string]int // 0 unvisited, 1 on the stack, 2 done
	stack []string
	names []string // allNames, once the variables are known
}

// label is how messages name a variable's definition.
func (r *varResolver) label(name string) string {
	if o, ok := r.origin[name]; ok {
		return o
	}
	return "vars." + name
}

// defined reports whether name is declared or built in, whatever its value.
func (r *varResolver) defined(name string) bool {
	if _, ok := r.raw[name]; ok {
		return true
	}
	_, ok := r.builtins[name]
	return ok
}

// resolve is the expanded value of a variable (declared or built in),
// reporting a cycle, an undefined reference or a value past the budget once,
// at the variable.
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

	from, ok := r.resolveRefs(name, n)
	if !ok {
		return "", false
	}
	v, _, tooLarge := substitute(n.Value, r.resolve)
	if tooLarge {
		r.d.at(r.keys[name], "%s: expands to more than %s (%s); refusing to go on",
			r.label(name), byteSize(maxValueBytes), strings.Join(r.growth(name), " -> "))
		return "", false
	}
	if !r.d.spendBytes(len(v), r.keys[name]) {
		return "", false
	}
	r.resolved[name] = v
	r.from[name] = from
	return v, true
}

// resolveRefs resolves the variables name's value n refers to, and returns
// the overrides its value comes from.
func (r *varResolver) resolveRefs(name string, n *yaml.Node) (from []string, ok bool) {
	_, overridden := r.origin[name]
	at := func(offset int) Pos {
		if overridden { // the value is not in the file: point at the declaration
			return nodePos(r.d.file, r.keys[name])
		}
		return refPos(r.d.file, n, offset)
	}
	refs, problem, off := scanRefs(n.Value)
	if problem != "" {
		r.d.atPos(at(off), "%s: %s", r.label(name), problem)
		return nil, false
	}
	ok = true
	if overridden {
		from = []string{r.origin[name]}
	}
	for _, rf := range refs {
		if _, found := r.resolve(rf.name); found {
			from = appendNew(from, r.from[rf.name]...)
			continue
		}
		ok = false
		if !r.defined(rf.name) {
			r.d.hinted(at(rf.offset), r.label(name), func() string { return r.d.hints.suggest(rf.name, r.allNames()) },
				"undefined variable ${%s}", rf.name)
		}
	}
	return from, ok
}

// growth is the chain of variables that made name large: at each step the
// largest variable the previous one uses, shortened in the middle.
func (r *varResolver) growth(name string) []string {
	chain := []string{name}
	for cur := name; len(chain) < 64; {
		refs, _, _ := scanRefs(r.raw[cur].Value)
		next, size := "", -1
		for _, rf := range refs {
			if v, ok := r.resolved[rf.name]; ok && r.raw[rf.name] != nil && len(v) > size {
				next, size = rf.name, len(v)
			}
		}
		if next == "" {
			break
		}
		chain = append(chain, next)
		cur = next
	}
	if len(chain) > 8 {
		chain = append(append(chain[:4:4], "…"), chain[len(chain)-3:]...)
	}
	return chain
}

// allNames is every variable a reference may name, for suggestions. The
// names are fixed before the first reference is resolved.
func (r *varResolver) allNames() []string {
	if r.names != nil {
		return r.names
	}
	out := make([]string, 0, len(r.raw)+len(r.builtins))
	for k := range r.raw {
		out = append(out, k)
	}
	for k := range r.builtins {
		out = append(out, k)
	}
	r.names = out
	return out
}

// literalHint is the suggestion of a close variable name, or else how to
// pass a shell variable through: ${HOME} in a run step's command is the
// plan's, $${HOME} the shell's.
func literalHint(name, suggestion string) string {
	if suggestion != "" {
		return suggestion
	}
	return fmt.Sprintf(" (for the shell's or the program's own ${%s}, write $${%s})", name, name)
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func byteSize(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
