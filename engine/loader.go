package engine

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// loader holds what parsing one plan file shares between its phases.
type loader struct {
	d       *diags
	reg     *Registry
	p       *Plan
	vars    *varResolver
	defs    *defaults
	unknown *UnknownVarError
}

func (l *loader) parse(data []byte, opts LoadOptions) *Plan {
	d := l.d
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		sp := locateSyntaxError(d.file, data, err)
		d.atPos(sp.pos, "%s", sp.msg)
		return nil
	}
	if second := secondDocument(data); second != nil {
		// What follows a stray --- would never run: say so rather than
		// ignore it.
		d.at(second, "a plan file holds one YAML document; another starts here (a stray ---?)")
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.atPos(Pos{File: d.file, Line: 1, Col: 1}, "plan is empty")
		return nil
	}
	root := resolveAlias(doc.Content[0])

	var hdr planDoc
	dec := newDecoder(d)
	dec.decode(root, reflect.ValueOf(&hdr).Elem(), reflect.ValueOf(planDefaults), "", "")
	if root.Kind != yaml.MappingNode {
		return nil
	}

	abs, err := filepath.Abs(d.file)
	if err != nil {
		d.atPos(Pos{File: d.file}, "resolve plan directory: %v", err)
		return nil
	}
	l.p = &Plan{
		File: d.file, Dir: filepath.Dir(abs),
		Name: hdr.Name, Description: hdr.Description,
		Parallelism: hdr.Parallelism, FailurePolicy: FailurePolicy(hdr.FailurePolicy),
		byID: map[string]*PlanStep{},
	}
	l.defs = hdr.Defaults
	l.resolveVars(&hdr.Vars, opts)
	l.parseSteps(&hdr.Steps)
	checkNeeds(d, l.p)
	return l.p
}

// overrides merges the shorthand map into the ordered overrides.
func (o LoadOptions) overrides() []VarOverride {
	out := append([]VarOverride(nil), o.Overrides...)
	names := make([]string, 0, len(o.Vars))
	for n := range o.Vars {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, VarOverride{Name: n, Value: o.Vars[n], Origin: "override " + n})
	}
	return out
}

// resolveVars resolves the declared vars with overrides and built-ins.
func (l *loader) resolveVars(varsNode *yaml.Node, opts LoadOptions) {
	d := l.d
	builtins := opts.Host.vars()
	builtins["plan.dir"] = l.p.Dir
	r := &varResolver{
		d: d, raw: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, origin: map[string]string{},
		builtins: builtins, resolved: map[string]string{}, from: map[string][]string{}, state: map[string]int{},
	}
	l.vars = r
	var declared []string
	if varsNode.Kind != 0 && !isNull(varsNode) {
		if varsNode.Kind != yaml.MappingNode {
			d.at(varsNode, "vars: expected a mapping, got %s", kindName(varsNode))
		} else {
			for _, kv := range d.pairs(varsNode) {
				k, v := kv[0], resolveAlias(kv[1])
				switch {
				case !varNamePattern.MatchString(k.Value):
					d.at(k, "vars: invalid variable name %q (letters, digits, _ and -, not starting with a digit)", k.Value)
					continue
				case r.raw[k.Value] != nil:
					d.at(k, "vars: duplicate variable %q", k.Value)
					continue
				case v.Kind != yaml.ScalarNode:
					d.at(v, "vars.%s: expected a string, got %s", k.Value, kindName(v))
					continue
				}
				r.raw[k.Value], r.keys[k.Value] = v, k
				declared = append(declared, k.Value)
			}
		}
	}
	l.override(r, builtins, declared, opts.overrides())
	l.p.Vars = map[string]string{}
	for _, name := range declared {
		if v, ok := r.resolve(name); ok {
			l.p.Vars[name] = v
		}
	}
}

// override applies the overrides: they replace declared values (as
// literal text, which may itself refer to variables) and may replace
// built-ins; an undeclared name is an error unless the override is
// optional.
func (l *loader) override(r *varResolver, builtins map[string]string, declared []string, overrides []VarOverride) {
	for _, o := range overrides {
		if _, ok := r.raw[o.Name]; ok {
			k := r.keys[o.Name]
			r.raw[o.Name] = &yaml.Node{Kind: yaml.ScalarNode, Value: o.Value, Line: k.Line, Column: k.Column}
			r.origin[o.Name] = o.Origin
			continue
		}
		if _, ok := builtins[o.Name]; ok {
			builtins[o.Name] = o.Value
			r.from[o.Name] = []string{o.Origin}
			continue
		}
		if o.Optional {
			continue
		}
		if l.unknown == nil {
			l.unknown = &UnknownVarError{Known: declared}
		}
		l.unknown.Unknown = append(l.unknown.Unknown, o)
	}
}

func (l *loader) parseSteps(stepsNode *yaml.Node) {
	d, p := l.d, l.p
	if stepsNode.Kind == 0 {
		return // reported as missing by the header decoder
	}
	if stepsNode.Kind != yaml.MappingNode {
		d.at(stepsNode, "steps: expected a mapping of step ids to steps, got %s", kindName(stepsNode))
		return
	}
	if len(stepsNode.Content) == 0 {
		d.at(stepsNode, "steps: a plan needs at least one step")
	}
	for _, kv := range d.pairs(stepsNode) {
		k, v := kv[0], resolveAlias(kv[1])
		id := k.Value
		if !stepIDPattern.MatchString(id) {
			d.at(k, "invalid step id %q (lowercase letters, digits and dashes, starting with a letter)", id)
		}
		if prev, dup := p.byID[id]; dup {
			d.at(k, "duplicate step id %q (first defined at line %d)", id, prev.Pos.Line)
			continue
		}
		s := &PlanStep{ID: id, Pos: nodePos(d.file, k)}
		p.byID[id] = s
		p.Steps = append(p.Steps, s)
		l.parseStep(s, v)
	}
}

func (l *loader) parseStep(s *PlanStep, n *yaml.Node) {
	d := l.d
	if n.Kind != yaml.MappingNode {
		d.named(nodePos(d.file, n), s.ID, "expected a mapping with type and with, got %s", kindName(n))
		return
	}
	before := d.found
	// Variables are expanded everywhere in a step except in type and needs:
	// the graph's shape stays the same whatever the variables say.
	ex := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	e := newExpander(d, l.vars)
	e.active[n] = true
	for _, kv := range d.pairs(n) {
		e.literal = kv[0].Value == "type" || kv[0].Value == "needs"
		ex.Content = append(ex.Content, kv[0], e.interpolate(kv[1], s.ID+"."+kv[0].Value))
	}
	e.literal = false
	var sd stepDoc
	dec := newDecoder(d)
	dec.quiet, dec.notes, dec.expanded = e.poisoned, e.notes, e.expanded
	dec.decode(ex, reflect.ValueOf(&sd).Elem(), reflect.Value{}, s.ID, "")
	s.Type, s.Description, s.Needs = sd.Type, sd.Description, sd.Needs
	for i := range sd.Needs {
		s.needPositions = append(s.needPositions, nodePos(d.file, dec.fields[fmt.Sprintf("needs[%d]", i)]))
	}
	s.Timeout, s.Retry, s.retrySet = l.policy(sd)
	if sd.Type == "" {
		return
	}
	typeNode := dec.fields["type"]
	st, ok := l.reg.Lookup(sd.Type)
	if !ok {
		hint := func() string {
			if strings.Contains(sd.Type, "${") {
				return " (variables are not expanded in type and needs: the graph's shape never depends on them)"
			}
			return suggestOrList(l.d.hints.suggest(sd.Type, l.reg.names()), l.reg.names())
		}
		d.hinted(nodePos(d.file, typeNode), s.ID, hint, "unknown step type %q", sd.Type)
		return
	}
	withNode := &sd.With
	if withNode.Kind == 0 {
		withNode = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	if d.found > before || dec.errs > 0 {
		l.buildParams(s, st, withNode, e, false)
		return
	}
	l.buildParams(s, st, withNode, e, true)
}

// buildParams decodes a step's with: into its type's parameters, starting
// from the type's defaults, and has the type build the step from them.
// The builder runs even when some fields failed, so every problem shows
// at once; its findings about failed fields are dropped (place), and no
// step is kept unless everything held (keep false: the step itself failed).
func (l *loader) buildParams(s *PlanStep, st *StepType, withNode *yaml.Node, e *expander, keep bool) {
	params := st.NewParams()
	pdec := newDecoder(l.d)
	pdec.quiet, pdec.notes, pdec.expanded = e.poisoned, e.notes, e.expanded
	pdec.expand = l.expandDefault
	pdec.defaultNote = l.defaultNote
	pdec.decode(withNode, reflect.ValueOf(params).Elem(), st.defaults, s.ID+".with", "")
	if len(e.poisoned) > 0 || pdec.failed[""] {
		// A value whose variables did not resolve is not the user's
		// value: checking it would only repeat the variable's problem.
		return
	}
	impl, err := st.build(s.ID, params)
	if fes, ok := fieldErrors(err); ok {
		pdec.place(withNode, fes, s.ID+".with", "")
	} else if err != nil {
		// Built from fields that failed, the error would only garble
		// what decoding said.
		if pdec.errs == 0 {
			l.d.named(nodePos(l.d.file, withNode), s.ID, "%v", err)
		}
		return
	}
	if keep && pdec.errs == 0 {
		s.Params, s.Impl = params, impl
	}
}

// expandDefault expands the variables in a default value ("${host.arch}").
func (l *loader) expandDefault(def string) string {
	if _, problem, _ := scanRefs(def); problem != "" {
		return def
	}
	if v, ok, _ := substitute(def, l.vars.resolve); ok {
		return v
	}
	return def
}

// defaultNote says which overrides a default's variables came from.
func (l *loader) defaultNote(def string) string {
	refs, _, _ := scanRefs(def)
	var from []string
	for _, r := range refs {
		from = appendNew(from, l.vars.from[r.name]...)
	}
	if len(from) == 0 {
		return ""
	}
	return " (value from " + strings.Join(from, ", ") + ")"
}

// policy is a step's timeout and retry policy: its own, else the plan's
// defaults, else the built-in ones.
func (l *loader) policy(sd stepDoc) (time.Duration, Retry, bool) {
	var timeout time.Duration
	switch {
	case sd.Timeout != nil:
		timeout = time.Duration(*sd.Timeout)
	case l.defs != nil:
		timeout = time.Duration(l.defs.Timeout)
	}
	r, set := Retry{Attempts: 1}, true
	switch {
	case sd.Retry != nil:
		r = *sd.Retry
	case l.defs != nil && l.defs.Retry != nil:
		r = *l.defs.Retry
	default:
		set = false
	}
	if r.Attempts == 0 {
		r.Attempts = 1
	}
	if r.Delay == 0 {
		r.Delay = Duration(defaultRetryDelay)
	}
	if r.MaxDelay == 0 {
		r.MaxDelay = Duration(defaultRetryMaxDelay)
	}
	return timeout, r, set
}

// suggestOrList is the suggestion, or else the list of candidates.
func suggestOrList(suggestion string, candidates []string) string {
	if suggestion != "" {
		return suggestion
	}
	return " (known types: " + validNames(candidates) + ")"
}
