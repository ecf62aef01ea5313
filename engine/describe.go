package engine

import (
	"fmt"
	"reflect"
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
func (t *StepType) Params() []ParamDoc { return describeStruct(t.params, "") }

func describeStruct(t reflect.Type, prefix string) []ParamDoc {
	var out []ParamDoc
	for _, f := range structFields(t).list {
		sf := t.Field(f.index)
		name := joinPath(prefix, f.name)
		out = append(out, ParamDoc{
			Name: name, Type: typeName(sf.Type), Required: f.required, Default: f.def,
			Enum: f.enum, Description: sf.Tag.Get("jsonschema_description"),
		})
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != yamlNodeType && !reflect.PointerTo(ft).Implements(textUnmarshalerType) {
			out = append(out, describeStruct(ft, name)...)
		}
	}
	return out
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
