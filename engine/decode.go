package engine

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// The decoder turns a yaml.Node into a typed parameter struct, starting
// from the struct's default value (see Register) and reporting every
// problem with its position instead of stopping at the first, which
// yaml.v3's own Decode cannot do. The struct's tags (fields.go) are the
// rest of its description.

// FieldError places a problem at one field of a step's parameters. Path
// uses the yaml names, dot-separated, with [i] for list items:
// "crictl.url", "binaries[1]".
type FieldError struct {
	Path    string
	Message string
	// Uses lists the other fields the finding is built on; when one of
	// them failed to decode, the finding is not reported.
	Uses []string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// FieldErrors is what a step type's builder returns when its parameters,
// taken together, do not make a step (url and baseURL both set, a pin for
// a binary not installed). The loader places each at its field.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// checker is implemented by the engine's own plan structs (Retry) whose
// fields relate to each other.
type checker interface {
	check() []FieldError
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlNodeType        = reflect.TypeFor[yaml.Node]()
)

type decoder struct {
	d *diags
	// expand expands ${...} in default values, so a default can be
	// "${host.arch}"; defaultNote says where such a value came from.
	expand      func(string) string
	defaultNote func(string) string
	// fields maps a yaml path (relative to the decode root) to its node, so
	// that builders' findings can be positioned.
	fields map[string]*yaml.Node
	// failed holds the paths whose value was reported as wrong; findings
	// about them would only repeat the problem.
	failed map[string]bool
	// errs counts the problems found, including those left unsaid.
	errs int
	// quiet holds nodes whose problems are consequences of one reported
	// elsewhere (a variable that failed): they count, but are not reported.
	quiet map[*yaml.Node]bool
	// notes are appended to messages about a node (where its value came from).
	notes map[*yaml.Node]string
	// expanded holds scalars written with ${...} (and defaults): an editor
	// sees the reference, which the schema accepts for any field, so only
	// their expanded value is checked.
	expanded map[*yaml.Node]bool
}

func newDecoder(d *diags) *decoder {
	return &decoder{d: d, fields: map[string]*yaml.Node{}, failed: map[string]bool{},
		notes: map[*yaml.Node]string{}, expanded: map[*yaml.Node]bool{}}
}

// report records a problem with the value at n, called name. Once a
// budget is spent, values are missing from what was read: their absence
// is no news.
func (dec *decoder) report(n *yaml.Node, name, format string, args ...any) {
	dec.reportHinted(n, name, nil, format, args...)
}

// reportHinted is report with a hint, made only when the problem is listed.
func (dec *decoder) reportHinted(n *yaml.Node, name string, hint func() string, format string, args ...any) {
	dec.errs++
	if dec.quiet[n] || dec.d.refused() {
		return
	}
	note := dec.notes[n]
	dec.d.hinted(nodePos(dec.d.file, n), name, func() string {
		if hint == nil {
			return note
		}
		return hint() + note
	}, format, args...)
}

// decode fills v (a settable value) from n, starting from def (a value of
// v's type, or invalid for none). prefix is how messages name the value
// ("prepare.with"); path is the yaml path relative to the root.
func (dec *decoder) decode(n *yaml.Node, v, def reflect.Value, prefix, path string) {
	dec.decodeField(n, v, def, prefix, path, nil)
}

// decodeField is decode for the value of a struct field f (nil for list
// items and map values): a field with a pattern or an enum is text for
// the schema.
func (dec *decoder) decodeField(n *yaml.Node, v, def reflect.Value, prefix, path string, f *field) {
	n = resolveAlias(n)
	if !dec.d.spend(n) {
		return
	}
	dec.fields[path] = n
	name := joinName(prefix, path)
	if !dec.literalTypeAllowed(n, v, f, name) {
		return
	}
	switch {
	case v.Kind() == reflect.Pointer:
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if def.IsValid() && def.Kind() == reflect.Pointer {
			def = def.Elem()
		}
		dec.decode(n, v.Elem(), def, prefix, path)
	case v.Type() == yamlNodeType:
		v.Set(reflect.ValueOf(*n))
	case reflect.PointerTo(v.Type()).Implements(textUnmarshalerType):
		if dec.expectScalar(n, name, "a string") {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
				dec.report(n, name, "%v", err)
			}
		}
	case v.Kind() == reflect.Slice:
		dec.decodeList(n, v, prefix, path)
	case v.Kind() == reflect.Map:
		dec.decodeMap(n, v, prefix, path)
	case v.Kind() == reflect.Struct:
		dec.decodeStruct(n, v, def, prefix, path)
	default:
		dec.decodeScalar(n, v, name)
	}
}

// decodeList replaces a list's default as a whole: items are not merged.
func (dec *decoder) decodeList(n *yaml.Node, v reflect.Value, prefix, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		dec.report(n, joinName(prefix, path), "expected a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		dec.decode(item, s.Index(i), reflect.Value{}, prefix, fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// decodeMap replaces a map's default as a whole: keys are not merged.
func (dec *decoder) decodeMap(n *yaml.Node, v reflect.Value, prefix, path string) {
	name := joinName(prefix, path)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		dec.report(n, name, "expected a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	seen := map[string]bool{}
	for _, kv := range dec.d.pairs(n) {
		k, val := kv[0], kv[1]
		if seen[k.Value] {
			dec.report(k, name, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		elem := reflect.New(v.Type().Elem()).Elem()
		dec.decode(val, elem, reflect.Value{}, prefix, joinPath(path, k.Value))
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

func (dec *decoder) decodeStruct(n *yaml.Node, v, def reflect.Value, prefix, path string) {
	name := joinName(prefix, path)
	fields := structFields(v.Type())
	if isNull(n) {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	}
	if n.Kind != yaml.MappingNode {
		dec.report(n, name, "expected a mapping, got %s", kindName(n))
		dec.failed[path] = true
		return
	}
	set := dec.decodeGiven(n, v, def, fields, prefix, path)
	for _, f := range fields.list {
		if set[f.name] {
			continue
		}
		fpath := joinPath(path, f.name)
		if f.required {
			dec.report(n, name, "missing required field %q", f.name)
			dec.failed[fpath] = true
			continue
		}
		dec.applyDefault(n, v.FieldByIndex(f.index), defaultOf(def, f), prefix, fpath, f)
	}
	dec.check(n, v, prefix, path)
}

// decodeGiven decodes the fields the mapping gives, and returns their names.
func (dec *decoder) decodeGiven(n *yaml.Node, v, def reflect.Value, fields fieldSet, prefix, path string) map[string]bool {
	name := joinName(prefix, path)
	set := map[string]bool{}
	for _, kv := range dec.d.pairs(n) {
		k, val := kv[0], kv[1]
		f, ok := fields.byName[k.Value]
		switch {
		case !ok && fields.extension(k.Value):
			continue // x-... keys hold anchors for the rest of the document
		case !ok:
			dec.reportHinted(k, name, func() string { return dec.d.hints.suggest(k.Value, fields.names) }, "unknown field %q", k.Value)
			continue
		case set[k.Value]:
			dec.report(k, name, "duplicate key %q", k.Value)
			continue
		}
		fv := v.FieldByIndex(f.index)
		if unset(resolveAlias(val), fv.Type()) {
			continue // not given: the default applies, or it is missing
		}
		set[k.Value] = true
		fpath := joinPath(path, f.name)
		before := dec.errs
		dec.decodeField(val, fv, defaultOf(def, f), prefix, fpath, &f)
		if dec.errs == before { // constraints only make sense for a well-typed value
			dec.checkConstraints(resolveAlias(val), fv, f, joinName(prefix, fpath))
		}
		if dec.errs > before {
			dec.failed[fpath] = true
		}
	}
	return set
}

// applyDefault gives an omitted field its default: a nested struct its
// own fields' defaults, any other field the registered value, decoded as
// if the plan had written it (so ${host.arch} in a default is expanded and
// checked like a plan's value). A default has no position of its own: its
// messages point at the mapping that omitted it.
func (dec *decoder) applyDefault(at *yaml.Node, v, def reflect.Value, prefix, path string, f field) {
	if isStruct(v.Type()) {
		dec.decodeStruct(&yaml.Node{Kind: yaml.MappingNode, Line: at.Line, Column: at.Column}, v, def, prefix, path)
		delete(dec.fields, path)
		return
	}
	if !def.IsValid() || def.IsZero() {
		return
	}
	dn, refs := dec.defaultNode(def, at)
	if dn == nil {
		return
	}
	if dec.defaultNote != nil && refs != "" {
		if note := dec.defaultNote(refs); note != "" {
			dec.notes[dn] = note
		}
	}
	dec.decodeField(dn, v, reflect.Value{}, prefix, path, &f)
	delete(dec.fields, path)
}

// defaultNode writes a default value as the YAML a plan would hold, with
// ${...} expanded, positioned at the mapping that lacks it. refs is the
// default's text with its references, for the note on where they came from.
func (dec *decoder) defaultNode(def reflect.Value, at *yaml.Node) (*yaml.Node, string) {
	var doc yaml.Node
	if err := doc.Encode(def.Interface()); err != nil {
		panic(fmt.Sprintf("engine: default %v cannot be written as YAML: %v", def, err))
	}
	var refs strings.Builder
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		n.Line, n.Column = at.Line, at.Column
		dec.expanded[n] = true
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
			refs.WriteString(n.Value)
			if dec.expand != nil {
				n.Value, n.Tag, n.Style = dec.expand(n.Value), "!!str", 0
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	return &doc, refs.String()
}

// check runs a struct's own relations (Retry: delay within maxDelay) once
// its fields are decoded, and places each finding at its field.
func (dec *decoder) check(n *yaml.Node, v reflect.Value, prefix, path string) {
	c, ok := v.Addr().Interface().(checker)
	if !ok || dec.failed[path] {
		return
	}
	dec.place(n, c.check(), prefix, path)
}

// place reports findings at their fields (below path), dropping those
// about a field that failed or built on one (Uses): they would only
// repeat or garble what decoding said.
func (dec *decoder) place(n *yaml.Node, findings []FieldError, prefix, path string) {
	for _, fe := range findings {
		fpath := joinPath(path, fe.Path)
		uses := make([]string, len(fe.Uses))
		for i, u := range fe.Uses {
			uses[i] = joinPath(path, u)
		}
		if dec.failedAt(fpath) || dec.anyFailed(uses) {
			continue
		}
		at := n
		if fn := dec.fields[fpath]; fn != nil {
			at = fn
		}
		dec.report(at, joinName(prefix, fpath), "%s", fe.Message)
	}
}

// fieldErrors unwraps the findings a builder returned.
func fieldErrors(err error) (FieldErrors, bool) {
	var fes FieldErrors
	if errors.As(err, &fes) {
		return fes, true
	}
	var fe FieldError
	if errors.As(err, &fe) {
		return FieldErrors{fe}, true
	}
	return nil, false
}

// pre is the "name: " that starts a message about a value, or nothing at the
// top level of a plan.
func pre(name string) string {
	if name == "" {
		return ""
	}
	return name + ": "
}

// anyFailed reports whether any of paths failed to decode.
func (dec *decoder) anyFailed(paths []string) bool {
	for _, p := range paths {
		if dec.failedAt(p) {
			return true
		}
	}
	return false
}

// failedAt reports whether path, or a field containing it, failed to decode.
func (dec *decoder) failedAt(path string) bool {
	for p := path; ; {
		if dec.failed[p] {
			return true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}
