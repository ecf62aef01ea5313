package engine

import (
	"sort"
	"strings"

	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"
)

// ParamDoc documents one parameter of a step type, for `rootfsctl steps`.
type ParamDoc struct {
	Name        string   `json:"name"` // dotted for nested fields: crictl.version
	Type        string   `json:"type"`
	Required    bool     `json:"required,omitempty"`
	Default     string   `json:"default,omitempty"`
	Enum        []string `json:"enum,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Params documents the step type's parameters, in declaration order.
func (t *StepType) Params() []ParamDoc { return describeStruct(t.params, "", t.defaults) }

func describeStruct(t reflect.Type, prefix string, def reflect.Value) []ParamDoc {
	var out []ParamDoc
	for _, f := range structFields(t).list {
		sf := t.FieldByIndex(f.index)
		name := joinPath(prefix, f.name)
		dv := defaultOf(def, f)
		doc := ParamDoc{Name: name, Type: typeName(sf.Type), Required: f.required,
			Enum: f.enum, Description: sf.Tag.Get("jsonschema_description")}
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if !isStruct(ft) {
			doc.Default = defaultText(dv)
		}
		out = append(out, doc)
		if isStruct(ft) {
			out = append(out, describeStruct(ft, name, dv)...)
		}
	}
	return out
}

// defaultText shows a default as a plan would write it: "usr/local/bin",
// "kubelet, kubectl", "amd64: http://..., arm64: http://...".
func defaultText(v reflect.Value) string {
	val, ok := plainDefault(v)
	if !ok {
		return ""
	}
	switch x := val.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s: %v", k, x[k])
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(val)
}

// plainDefault is a default value as plain data (what its YAML says).
func plainDefault(v reflect.Value) (any, bool) {
	if !v.IsValid() || v.IsZero() {
		return nil, false
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return nil, false
	}
	var out any
	if err := n.Decode(&out); err != nil {
		return nil, false
	}
	return out, true
}

func typeName(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[Duration]():
		return "duration"
	case t == reflect.TypeFor[FileMode]():
		return "mode"
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return "string"
	}
	switch t.Kind() {
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return fmt.Sprintf("map of %s", typeName(t.Elem()))
	case reflect.Struct:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	case reflect.Bool:
		return "boolean"
	}
	return t.Kind().String()
}
