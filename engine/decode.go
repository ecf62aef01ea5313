package engine

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The decoder turns a yaml.Node into a typed parameter struct. The struct's
// tags are the single source of truth: `yaml` names the key, `jsonschema`
// (the same tag invopop/jsonschema reads for the published schema) carries
// required, default=, enum=, pattern=, minimum=, maximum= and minItems=.
// Decoding reports every problem with its position instead of stopping at the
// first, which yaml.v3's own Decode cannot do.

// FieldError is returned by a parameter struct's Validate method to place a
// problem at one of its fields. Path uses the yaml names, dot-separated, with
// [i] for list items: "crictl.url", "binaries[1]".
type FieldError struct {
	Path    string
	Message string
	// Uses lists the other fields the finding is built on; when one of
	// them failed to decode, the finding is not reported.
	Uses []string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// Validator is implemented by parameter structs that check more than types,
// for example that a version is well-formed or a URL template is known.
type Validator interface {
	Validate() []FieldError
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlNodeType        = reflect.TypeFor[yaml.Node]()
)

type decoder struct {
	d *diags
	// expand, when set, expands ${...} in default= values, so a default can
	// be "${host.arch}"; defaultNote says where such a value came from.
	expand      func(string) string
	defaultNote func(string) string
	// fields maps a yaml path (relative to the decode root) to its node, so
	// that Validate errors can be positioned.
	fields map[string]*yaml.Node
	// failed holds the paths whose value was reported as wrong; Validate's
	// findings about them would only repeat the problem.
	failed map[string]bool
	// errs counts the problems found, including those left unsaid.
	errs int
	// quiet holds nodes whose problems are consequences of one reported
	// elsewhere (a variable that failed): they count, but are not reported.
	quiet map[*yaml.Node]bool
	// notes are appended to messages about a node (where its value came from).
	notes map[*yaml.Node]string
	// noValidate skips the structs' Validate: the values are not the
	// user's (a variable they use failed).
	noValidate bool
	// expanded holds scalars written with ${...}: an editor sees the
	// reference, which the schema accepts for any field, so only their
	// expanded value is checked.
	expanded map[*yaml.Node]bool
}

func newDecoder(d *diags) *decoder {
	return &decoder{d: d, fields: map[string]*yaml.Node{}, failed: map[string]bool{}}
}

// report records a problem with the value at n.
func (dec *decoder) report(n *yaml.Node, format string, args ...any) {
	dec.errs++
	if dec.quiet[n] {
		return
	}
	dec.d.at(n, "%s", fmt.Sprintf(format, args...)+dec.notes[n])
}

// decode fills v (a settable value) from n. prefix is how messages name the
// value ("prepare.with"); path is the yaml path relative to the root.
func (dec *decoder) decode(n *yaml.Node, v reflect.Value, prefix, path string) {
	dec.decodeField(n, v, prefix, path, nil)
}

// decodeField is decode for the value of a struct field f (nil for list
// items and map values): a field with a pattern or an enum is text for
// the schema.
func (dec *decoder) decodeField(n *yaml.Node, v reflect.Value, prefix, path string, f *field) {
	n = resolveAlias(n)
	if !dec.d.spend(n) {
		return
	}
	dec.fields[path] = n
	name := joinName(prefix, path)
	if n.Kind == yaml.ScalarNode && !dec.expanded[n] && !isNull(n) && v.Type() != yamlNodeType {
		// The YAML type an editor sees must be one the schema allows, so
		// that the schema and this decoder agree on every literal value.
		constrained := f != nil && (len(f.enum) > 0 || f.pattern != nil)
		if allowed := allowedTypes(v.Type(), constrained); !typeAllowed(yamlType(n), allowed) {
			dec.report(n, "%sexpected %s, got %s%s", pre(name), typeWords(allowed), describeScalar(n), quoteHint(n, allowed, v.Type(), f))
			return
		}
	}

	if v.Kind() == reflect.Pointer {
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		dec.decode(n, v.Elem(), prefix, path)
		return
	}
	if v.Type() == yamlNodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		if !dec.expectScalar(n, name, "a string") {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			dec.report(n, "%s%v", pre(name), err)
		}
		return
	}

	switch v.Kind() {
	case reflect.String:
		if isNull(n) {
			return
		}
		if dec.expectScalar(n, name, "a string") {
			v.SetString(n.Value)
		}
	case reflect.Bool:
		if !dec.expectScalar(n, name, "true or false") {
			return
		}
		switch strings.ToLower(n.Value) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			dec.report(n, "%sexpected true or false, got %q", pre(name), n.Value)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !dec.expectScalar(n, name, "an integer") {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, v.Type().Bits())
		if err != nil {
			dec.report(n, "%sexpected an integer, got %q", pre(name), n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			dec.report(n, "%sexpected a list, got %s", pre(name), kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			dec.decode(item, s.Index(i), prefix, fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			dec.report(n, "%sexpected a mapping, got %s", pre(name), kindName(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		seen := map[string]bool{}
		for _, kv := range dec.d.pairs(n) {
			k, val := kv[0], kv[1]
			if seen[k.Value] {
				dec.report(k, "%sduplicate key %q", pre(name), k.Value)
				continue
			}
			seen[k.Value] = true
			elem := reflect.New(v.Type().Elem()).Elem()
			dec.decode(val, elem, prefix, joinPath(path, k.Value))
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.Struct:
		dec.decodeStruct(n, v, prefix, path)
	default:
		panic(fmt.Sprintf("engine: cannot decode into %s", v.Type()))
	}
}

func (dec *decoder) decodeStruct(n *yaml.Node, v reflect.Value, prefix, path string) {
	name := joinName(prefix, path)
	fields := structFields(v.Type())
	if isNull(n) {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	}
	if n.Kind != yaml.MappingNode {
		dec.report(n, "%sexpected a mapping, got %s", pre(name), kindName(n))
		dec.failed[path] = true
		return
	}
	set := map[string]bool{}
	for _, kv := range dec.d.pairs(n) {
		k, val := kv[0], kv[1]
		f, ok := fields.byName[k.Value]
		if !ok && fields.extension(k.Value) {
			continue // x-... keys hold anchors for the rest of the document
		}
		if !ok {
			dec.report(k, "%sunknown field %q%s", pre(name), k.Value, suggest(k.Value, fields.names))
			continue
		}
		if set[k.Value] {
			dec.report(k, "%sduplicate key %q", pre(name), k.Value)
			continue
		}
		if unset(resolveAlias(val), v.Field(f.index).Type()) {
			continue // not given: the default applies, or it is missing
		}
		set[k.Value] = true
		fv := v.Field(f.index)
		fpath := joinPath(path, f.name)
		before := dec.errs
		dec.decodeField(val, fv, prefix, fpath, &f)
		if dec.errs == before { // constraints only make sense for a well-typed value
			dec.checkConstraints(resolveAlias(val), fv, f, joinName(prefix, fpath))
		}
		if dec.errs > before {
			dec.failed[fpath] = true
		}
	}
	for _, f := range fields.list {
		if set[f.name] {
			continue
		}
		if f.required {
			dec.report(n, "%smissing required field %q", pre(name), f.name)
			dec.failed[joinPath(path, f.name)] = true
			continue
		}
		if f.def == "" {
			// An omitted nested struct still gets its own fields' defaults.
			if ft := v.Field(f.index).Type(); ft.Kind() == reflect.Struct && ft != yamlNodeType &&
				!reflect.PointerTo(ft).Implements(textUnmarshalerType) {
				empty := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
				dec.decode(empty, v.Field(f.index), prefix, joinPath(path, f.name))
				delete(dec.fields, joinPath(path, f.name))
			}
			continue
		}
		{
			def := f.def
			if dec.expand != nil {
				def = dec.expand(def)
			}
			dn := defaultNode(def, n)
			if dec.defaultNote != nil && dec.notes != nil {
				if note := dec.defaultNote(f.def); note != "" {
					dec.notes[dn] = note
				}
			}
			dec.decode(dn, v.Field(f.index), prefix, joinPath(path, f.name))
			delete(dec.fields, joinPath(path, f.name)) // a default has no position of its own
		}
	}
	dec.validate(n, v, prefix, path)
}

// validate runs a struct's own Validate (checks that relate its fields)
// once its fields are decoded, and places each finding at its field. A
// finding about a field that failed, or built on one (Uses), would only
// repeat or garble what decoding said, and is dropped; so is everything
// when a value was poisoned by a failed variable.
func (dec *decoder) validate(n *yaml.Node, v reflect.Value, prefix, path string) {
	val, ok := v.Addr().Interface().(Validator)
	if !ok || dec.noValidate || dec.failed[path] {
		return
	}
	for _, fe := range val.Validate() {
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
		dec.report(at, "%s%s", pre(joinName(prefix, fpath)), fe.Message)
	}
}

func (dec *decoder) checkConstraints(n *yaml.Node, v reflect.Value, f field, name string) {
	if len(f.enum) > 0 && v.Kind() == reflect.String && v.String() != "" {
		if !contains(f.enum, v.String()) {
			dec.report(n, "%s%q is not one of %s", pre(name), v.String(), strings.Join(f.enum, ", "))
		}
	}
	if f.pattern != nil && v.Kind() == reflect.String && !f.pattern.MatchString(v.String()) {
		dec.report(n, "%s%q does not match %s", pre(name), v.String(), f.pattern)
	}
	if v.Kind() >= reflect.Int && v.Kind() <= reflect.Int64 {
		if f.minimum != nil && v.Int() < *f.minimum {
			dec.report(n, "%smust be at least %d, got %d", pre(name), *f.minimum, v.Int())
		}
		if f.maximum != nil && v.Int() > *f.maximum {
			dec.report(n, "%smust be at most %d, got %d", pre(name), *f.maximum, v.Int())
		}
	}
	if v.Kind() == reflect.Slice && f.minItems > 0 && v.Len() < f.minItems && n.Kind == yaml.SequenceNode {
		dec.report(n, "%sneeds at least %d item(s)", pre(name), f.minItems)
	}
}

func (dec *decoder) expectScalar(n *yaml.Node, name, want string) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	dec.report(n, "%sexpected %s, got %s", pre(name), want, kindName(n))
	return false
}

// field is what the tags of one struct field say.
type field struct {
	index    int
	name     string
	required bool
	def      string
	enum     []string
	pattern  *regexp.Regexp
	minimum  *int64
	maximum  *int64
	minItems int
}

type fieldSet struct {
	list   []field
	byName map[string]field
	names  []string
	// prefixes are the key prefixes (from yaml:"x-*" tags) of keys that
	// are accepted and ignored.
	prefixes []string
}

// extension reports whether key is an accepted-and-ignored extension key.
func (fs fieldSet) extension(key string) bool {
	for _, p := range fs.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func structFields(t reflect.Type) fieldSet {
	fs := fieldSet{byName: map[string]field{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name[:1]) + sf.Name[1:]
		}
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			fs.prefixes = append(fs.prefixes, prefix)
			continue
		}
		f := field{index: i, name: name}
		for _, item := range splitTag(sf.Tag.Get("jsonschema")) {
			key, val, _ := strings.Cut(item, "=")
			switch key {
			case "required":
				f.required = true
			case "default":
				f.def = val
			case "enum":
				f.enum = append(f.enum, val)
			case "pattern":
				f.pattern = regexp.MustCompile(val)
			case "minimum", "maximum":
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil {
					panic(fmt.Sprintf("engine: %s.%s: bad %s tag %q", t, sf.Name, key, val))
				}
				if key == "minimum" {
					f.minimum = &n
				} else {
					f.maximum = &n
				}
			case "minItems":
				f.minItems, _ = strconv.Atoi(val)
			}
		}
		fs.list = append(fs.list, f)
		fs.byName[name] = f
		fs.names = append(fs.names, name)
	}
	return fs
}

// splitTag splits a jsonschema tag on commas that are not escaped with a
// backslash, the same rule invopop/jsonschema applies.
func splitTag(tag string) []string {
	if tag == "" {
		return nil
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(tag); i++ {
		switch {
		case tag[i] == '\\' && i+1 < len(tag) && tag[i+1] == ',':
			cur.WriteByte(',')
			i++
		case tag[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(tag[i])
		}
	}
	return append(out, cur.String())
}

// pairs returns the key/value pairs of a mapping, expanding YAML merge
// keys ("<<: *anchor"); explicit keys come after merged ones so they win.
// Results are remembered per node and every merged mapping is counted in
// the node budget: a few lines of merge keys that fan out (<<: [*a, *a,
// ...] over nested anchors) would otherwise take exponential time.
func (d *diags) pairs(n *yaml.Node) [][2]*yaml.Node { return d.mergedPairs(n, 0) }

// maxMergeDepth bounds chains of merge keys; a merge that includes its own
// mapping would otherwise never end.
const maxMergeDepth = 16

func (d *diags) mergedPairs(n *yaml.Node, depth int) [][2]*yaml.Node {
	if p, ok := d.merged[n]; ok {
		return p
	}
	var merged, own [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" && k.Tag == "!!merge" {
			src := resolveAlias(v)
			srcs := []*yaml.Node{src}
			if src.Kind == yaml.SequenceNode {
				srcs = src.Content
			}
			for _, s := range srcs {
				if s = resolveAlias(s); s.Kind == yaml.MappingNode && depth < maxMergeDepth && d.spend(s) {
					merged = append(merged, d.mergedPairs(s, depth+1)...)
				}
			}
			continue
		}
		own = append(own, [2]*yaml.Node{k, v})
	}
	out := own
	if len(merged) > 0 {
		// Explicit keys override merged ones: drop merged keys set here.
		explicit := map[string]bool{}
		for _, kv := range own {
			explicit[kv[0].Value] = true
		}
		out = nil
		seen := map[string]bool{}
		for _, kv := range merged {
			if !explicit[kv[0].Value] && !seen[kv[0].Value] {
				seen[kv[0].Value] = true
				out = append(out, kv)
			}
		}
		out = append(out, own...)
	}
	if d.merged == nil {
		d.merged = map[*yaml.Node][][2]*yaml.Node{}
	}
	d.merged[n] = out
	return out
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unsupported YAML node"
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func joinName(prefix, path string) string {
	switch {
	case path == "":
		return prefix
	case prefix == "":
		return path
	case strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Suggest returns ` (did you mean "x"?)` for the candidate closest to got
// within a small edit distance, or "" when nothing is close.
func Suggest(got string, candidates []string) string { return suggest(got, candidates) }

func suggest(got string, candidates []string) string {
	// The edit distance costs the product of the lengths: names longer
	// than any sensible identifier get no suggestion.
	const maxLen = 64
	if len(got) > maxLen {
		return ""
	}
	best, bestD := "", 0
	for _, c := range candidates {
		if len(c) > maxLen {
			continue
		}
		d := levenshtein(strings.ToLower(got), strings.ToLower(c))
		if best == "" || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := max(2, len(got)/3)
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// validNames formats candidates for "expected one of" messages.
func validNames(candidates []string) string {
	c := append([]string(nil), candidates...)
	sort.Strings(c)
	return strings.Join(c, ", ")
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// defaultNode parses a default= tag value as YAML (so lists can be given in
// flow style, "[a\\, b]"), positioned at the mapping that lacks the field.
func defaultNode(def string, at *yaml.Node) *yaml.Node {
	var doc yaml.Node
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: def}
	if err := yaml.Unmarshal([]byte(def), &doc); err == nil && len(doc.Content) == 1 {
		n = doc.Content[0]
	}
	setPos(n, at.Line, at.Column)
	return n
}

func setPos(n *yaml.Node, line, col int) {
	n.Line, n.Column = line, col
	for _, c := range n.Content {
		setPos(c, line, col)
	}
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

// unset reports whether n gives no value for a field of type t: null, or
// an empty string for a typed value (a version, a path), which is what an
// empty variable expands to.
func unset(n *yaml.Node, t reflect.Type) bool {
	if isNull(n) {
		return true
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return n.Kind == yaml.ScalarNode && n.Value == "" && reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// yamlType is the JSON Schema type an editor gives a YAML scalar: the tag
// yaml.v3 resolved, which follows the YAML 1.2 core schema as
// yaml-language-server does.
func yamlType(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!int":
		return "integer"
	case "!!float":
		return "number"
	case "!!bool":
		return "boolean"
	case "!!null":
		return "null"
	}
	return "string"
}

func typeAllowed(yt string, allowed []string) bool {
	for _, a := range allowed {
		if a == yt || (a == "number" && yt == "integer") {
			return true
		}
	}
	return false
}

var allowedCache sync.Map // allowedKey -> []string

type allowedKey struct {
	t           reflect.Type
	constrained bool
}

// allowedTypes are the JSON types the schema allows for a value of Go type
// t (before expansion), read from the schema fragment schemaFor generates:
// one source for both.
func allowedTypes(t reflect.Type, constrained bool) []string {
	key := allowedKey{t, constrained}
	if v, ok := allowedCache.Load(key); ok {
		return v.([]string)
	}
	var out []string
	if constrained {
		out = []string{"string"}
	} else {
		out = schemaTypes(schemaFor(t, false))
	}
	allowedCache.Store(key, out)
	return out
}

// schemaTypes collects the types a schema fragment admits: its type,
// its anyOf branches and its const.
func schemaTypes(s map[string]any) []string {
	var out []string
	switch t := s["type"].(type) {
	case string:
		out = append(out, t)
	case []string:
		out = append(out, t...)
	}
	if c, ok := s["const"]; ok {
		switch c.(type) {
		case int, int64:
			out = append(out, "integer")
		case string:
			out = append(out, "string")
		}
	}
	if branches, ok := s["anyOf"].([]any); ok {
		for _, b := range branches {
			if m, ok := b.(map[string]any); ok {
				out = append(out, schemaTypes(m)...)
			}
		}
	}
	return out
}

func typeWords(allowed []string) string {
	var words []string
	for _, a := range allowed {
		w := map[string]string{"string": "a string", "integer": "an integer", "number": "a number",
			"boolean": "true or false", "object": "a mapping", "array": "a list", "null": ""}[a]
		if w != "" && !contains(words, w) {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return "a value"
	}
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func describeScalar(n *yaml.Node) string {
	switch yamlType(n) {
	case "integer", "number":
		return "the number " + n.Value
	case "boolean":
		return n.Value
	case "string":
		return fmt.Sprintf("the string %q", n.Value)
	}
	return kindName(n)
}

// quoteHint says how to write the value the field wants, when writing it
// so would make it right: quoting 1.5 for a version would only trade one
// error for another.
func quoteHint(n *yaml.Node, allowed []string, t reflect.Type, f *field) string {
	if yamlType(n) != "string" && typeAllowed("string", allowed) && validText(n.Value, t, f) {
		return fmt.Sprintf(" (quote it: %q)", n.Value)
	}
	plain := &yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}
	if yamlType(n) == "string" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 &&
		typeAllowed(yamlType(plain), allowed) {
		return " (remove the quotes)"
	}
	return ""
}

// validText reports whether s, as text, is a value of type t for field f.
func validText(s string, t reflect.Type, f *field) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)) == nil
	}
	if f != nil {
		if f.pattern != nil && !f.pattern.MatchString(s) {
			return false
		}
		if len(f.enum) > 0 && !contains(f.enum, s) {
			return false
		}
	}
	return true
}
