package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
)

// SchemaProvider lets a parameter type describe itself in the JSON Schema
// (for example a version string with its pattern).
type SchemaProvider interface {
	JSONSchema() map[string]any
}

var schemaProviderType = reflect.TypeFor[SchemaProvider]()

// SchemaExtender lets a parameter struct add what its fields' tags cannot
// say to its generated schema (fields that exclude each other, say).
type SchemaExtender interface {
	ExtendSchema(s map[string]any)
}

var schemaExtenderType = reflect.TypeFor[SchemaExtender]()

// interpolated matches a value that still holds a ${variable}: editors see
// plans before expansion, so typed fields accept such strings too.
func interpolated() map[string]any {
	return map[string]any{"type": "string", "pattern": `\$\{[^}]+\}`}
}

// Schema generates the JSON Schema (draft-07, the dialect yaml-language-server
// understands best) for plans using the registry's step types. It is derived
// from the same struct tags the decoder reads.
func Schema(reg *Registry) ([]byte, error) {
	defs := map[string]any{}
	var typeNames []any
	var branches []any
	for _, t := range reg.Types() {
		typeNames = append(typeNames, t.Name)
		params := schemaFor(t.params, true, t.defaults)
		params["description"] = t.Summary
		defs["with."+t.Name] = params
		then := map[string]any{"properties": map[string]any{"with": map[string]any{"$ref": "#/definitions/with." + t.Name}}}
		if req, _ := params["required"].([]string); len(req) > 0 {
			then["required"] = []string{"with"}
		}
		branches = append(branches, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"type": map[string]any{"const": t.Name}}, "required": []string{"type"}},
			"then": then,
		})
	}
	step := schemaFor(reflect.TypeFor[stepDoc](), true, reflect.Value{})
	props := step["properties"].(map[string]any)
	props["type"] = map[string]any{"enum": typeNames, "description": props["type"].(map[string]any)["description"]}
	props["needs"].(map[string]any)["items"] = map[string]any{"type": "string", "pattern": stepIDPattern.String()}
	props["needs"].(map[string]any)["uniqueItems"] = true
	props["with"].(map[string]any)["type"] = "object"
	step["allOf"] = branches
	defs["step"] = step

	root := schemaFor(reflect.TypeFor[planDoc](), false, reflect.ValueOf(planDefaults))
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	root["title"] = "rootfsctl plan"
	root["definitions"] = defs
	rp := root["properties"].(map[string]any)
	rp["vars"] = map[string]any{
		"description":          rp["vars"].(map[string]any)["description"],
		"type":                 "object",
		"propertyNames":        map[string]any{"pattern": varNamePattern.String()},
		"additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}},
	}
	rp["steps"] = map[string]any{
		"description":          rp["steps"].(map[string]any)["description"],
		"type":                 "object",
		"minProperties":        1,
		"propertyNames":        map[string]any{"pattern": stepIDPattern.String()},
		"additionalProperties": map[string]any{"$ref": "#/definitions/step"},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return buf.Bytes(), nil
}

// schemaFor describes values of type t. interp says whether ${...} strings
// are allowed in place of typed values (everywhere under steps); def is the
// default value, when there is one.
func schemaFor(t reflect.Type, interp bool, def reflect.Value) map[string]any {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == yamlNodeType:
		return map[string]any{}
	case reflect.PointerTo(t).Implements(schemaProviderType):
		return reflect.New(t).Interface().(SchemaProvider).JSONSchema()
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		// Any YAML scalar is taken as its text (8080, true); null is empty.
		return map[string]any{"type": []string{"string", "number", "boolean", "null"}}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": wrapInterp(schemaFor(t.Elem(), interp, reflect.Value{}), interp)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": wrapInterp(schemaFor(t.Elem(), interp, reflect.Value{}), interp)}
	case reflect.Struct:
		return structSchema(t, interp, def)
	}
	panic(fmt.Sprintf("engine: no schema for %s", t))
}

// structSchema describes a parameter struct: one property per field, no
// others (but for x-* style extension prefixes).
func structSchema(t reflect.Type, interp bool, def reflect.Value) map[string]any {
	props := map[string]any{}
	var required []string
	fs := structFields(t)
	for _, f := range fs.list {
		props[f.name] = fieldSchema(t.FieldByIndex(f.index), f, interp, defaultOf(def, f))
		if f.required {
			required = append(required, f.name)
		}
	}
	s := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if reflect.PointerTo(t).Implements(schemaExtenderType) {
		reflect.New(t).Interface().(SchemaExtender).ExtendSchema(s)
	}
	if len(fs.prefixes) > 0 {
		pp := map[string]any{}
		for _, p := range fs.prefixes {
			pp["^"+regexp.QuoteMeta(p)] = map[string]any{}
		}
		s["patternProperties"] = pp
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// fieldSchema describes one field: its type's schema narrowed by the
// field's tags, its description and default.
func fieldSchema(sf reflect.StructField, f field, interp bool, dv reflect.Value) map[string]any {
	s := schemaFor(sf.Type, interp, dv)
	if f.constrained() && sf.Type.Kind() == reflect.String {
		s["type"] = "string" // a constrained value is text, as written
	}
	constraints(s, f)
	s = wrapInterp(s, interp)
	// null means "not given", and so does "" for a typed value: optional
	// fields accept them, required ones do not (the decoder reports them
	// missing).
	typed := reflect.PointerTo(derefType(sf.Type)).Implements(textUnmarshalerType)
	switch {
	case f.required && typed:
		s = withMinLength(withoutNull(s))
	case f.required:
		s = withoutNull(s)
	case typed:
		s = withEmpty(withNull(s))
	default:
		s = withNull(s)
	}
	if d := sf.Tag.Get("jsonschema_description"); d != "" {
		s["description"] = d
	}
	if d, ok := plainDefault(dv); ok && !isStruct(derefType(sf.Type)) {
		s["default"] = d
	}
	return s
}

// constraints adds the field's tag constraints to s.
func constraints(s map[string]any, f field) {
	if len(f.enum) > 0 {
		s["enum"] = f.enum
	}
	if f.pattern != nil {
		s["pattern"] = f.pattern.String()
	}
	if f.minimum != nil {
		s["minimum"] = *f.minimum
	}
	if f.maximum != nil {
		s["maximum"] = *f.maximum
	}
	if f.minItems > 0 {
		s["minItems"] = f.minItems
	}
}

// withNull lets s also be null.
func withNull(s map[string]any) map[string]any {
	if enum, ok := s["enum"].([]string); ok {
		vals := []any{nil}
		for _, e := range enum {
			vals = append(vals, e)
		}
		s["enum"] = vals
	}
	switch t := s["type"].(type) {
	case string:
		s["type"] = []string{t, "null"}
		return s
	case []string:
		if !contains(t, "null") {
			s["type"] = append(t, "null")
		}
		return s
	}
	if branches, ok := s["anyOf"].([]any); ok {
		s["anyOf"] = append(branches, map[string]any{"type": "null"})
		return s
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

func derefType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Pointer {
		return t.Elem()
	}
	return t
}

// withEmpty lets s's string form also be "" (a typed value not given).
func withEmpty(s map[string]any) map[string]any {
	visit(s, func(m map[string]any) {
		if p, ok := m["pattern"].(string); ok {
			m["pattern"] = "^$|" + p
		}
		delete(m, "minLength")
	})
	return s
}

// withMinLength makes s's string form non-empty.
func withMinLength(s map[string]any) map[string]any {
	visit(s, func(m map[string]any) {
		if m["type"] == "string" {
			m["minLength"] = 1
		}
	})
	return s
}

// visit calls f for s and every anyOf branch in it.
func visit(s map[string]any, f func(map[string]any)) {
	f(s)
	if branches, ok := s["anyOf"].([]any); ok {
		for _, b := range branches {
			if m, ok := b.(map[string]any); ok {
				visit(m, f)
			}
		}
	}
}

// withoutNull removes null from s's types.
func withoutNull(s map[string]any) map[string]any {
	if t, ok := s["type"].([]string); ok {
		var keep []string
		for _, x := range t {
			if x != "null" {
				keep = append(keep, x)
			}
		}
		s["type"] = keep
	}
	return s
}

// wrapInterp lets a constrained scalar also be given as a ${...} string.
func wrapInterp(s map[string]any, interp bool) map[string]any {
	if !interp {
		return s
	}
	typ, _ := s["type"].(string)
	_, hasEnum := s["enum"]
	_, hasPattern := s["pattern"]
	_, hasAnyOf := s["anyOf"]
	if typ == "boolean" || typ == "integer" || hasAnyOf || (typ == "string" && (hasEnum || hasPattern)) {
		return map[string]any{"anyOf": []any{s, interpolated()}}
	}
	return s
}

// JSONSchema describes durations as the decoder reads them: duration text,
// or 0 for none.
func (Duration) JSONSchema() map[string]any {
	return map[string]any{"anyOf": []any{
		map[string]any{"type": "string", "minLength": 1, "pattern": durationPattern.String()},
		map[string]any{"const": 0},
	}}
}

// JSONSchema accepts modes as octal text or a YAML integer (0644 unquoted).
func (FileMode) JSONSchema() map[string]any {
	return map[string]any{"anyOf": []any{
		map[string]any{"type": "string", "pattern": `^(0[oO]?)?[0-7]{3,4}$`},
		map[string]any{"type": "integer", "minimum": 0, "maximum": 7777},
	}}
}
