package engine

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Helpers about YAML nodes, and about the YAML types an editor sees.

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
	out := overlay(merged, own)
	if d.merged == nil {
		d.merged = map[*yaml.Node][][2]*yaml.Node{}
	}
	d.merged[n] = out
	return out
}

// overlay is the merged pairs (each key once, the first wins) without the
// keys own sets, followed by own: explicit keys override merged ones.
func overlay(merged, own [][2]*yaml.Node) [][2]*yaml.Node {
	if len(merged) == 0 {
		return own
	}
	explicit := map[string]bool{}
	for _, kv := range own {
		explicit[kv[0].Value] = true
	}
	var out [][2]*yaml.Node
	seen := map[string]bool{}
	for _, kv := range merged {
		if !explicit[kv[0].Value] && !seen[kv[0].Value] {
			seen[kv[0].Value] = true
			out = append(out, kv)
		}
	}
	return append(out, own...)
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
		out = schemaTypes(schemaFor(t, false, reflect.Value{}))
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
