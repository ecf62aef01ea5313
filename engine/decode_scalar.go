package engine

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// literalTypeAllowed reports whether the YAML type of a literal scalar is
// one the schema allows for v, so that the schema and this decoder agree on
// every literal value an editor sees; when not, it reports the mismatch.
func (dec *decoder) literalTypeAllowed(n *yaml.Node, v reflect.Value, f *field, name string) bool {
	if n.Kind != yaml.ScalarNode || dec.expanded[n] || isNull(n) || v.Type() == yamlNodeType {
		return true
	}
	allowed := allowedTypes(v.Type(), f.constrained())
	if typeAllowed(yamlType(n), allowed) {
		return true
	}
	dec.report(n, name, "expected %s, got %s%s", typeWords(allowed), describeScalar(n), quoteHint(n, allowed, v.Type(), f))
	return false
}

func (dec *decoder) decodeScalar(n *yaml.Node, v reflect.Value, name string) {
	switch v.Kind() {
	case reflect.String:
		if !isNull(n) && dec.expectScalar(n, name, "a string") {
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
			dec.report(n, name, "expected true or false, got %q", n.Value)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !dec.expectScalar(n, name, "an integer") {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, v.Type().Bits())
		if err != nil {
			dec.report(n, name, "expected an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	default:
		panic(fmt.Sprintf("engine: cannot decode into %s", v.Type()))
	}
}

func (dec *decoder) checkConstraints(n *yaml.Node, v reflect.Value, f field, name string) {
	switch {
	case v.Kind() == reflect.String:
		dec.checkText(n, v.String(), f, name)
	case v.Kind() >= reflect.Int && v.Kind() <= reflect.Int64:
		if f.minimum != nil && v.Int() < *f.minimum {
			dec.report(n, name, "must be at least %d, got %d", *f.minimum, v.Int())
		}
		if f.maximum != nil && v.Int() > *f.maximum {
			dec.report(n, name, "must be at most %d, got %d", *f.maximum, v.Int())
		}
	case v.Kind() == reflect.Slice:
		if f.minItems > 0 && v.Len() < f.minItems && n.Kind == yaml.SequenceNode {
			dec.report(n, name, "needs at least %s", Plural(f.minItems, "item"))
		}
	}
}

// checkText checks a text value against the field's enum and pattern.
func (dec *decoder) checkText(n *yaml.Node, s string, f field, name string) {
	if len(f.enum) > 0 && s != "" && !contains(f.enum, s) {
		dec.report(n, name, "%q is not one of %s", s, strings.Join(f.enum, ", "))
	}
	if f.pattern != nil && !f.pattern.MatchString(s) {
		dec.report(n, name, "%q does not match %s", s, f.pattern)
	}
}

func (dec *decoder) expectScalar(n *yaml.Node, name, want string) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	dec.report(n, name, "expected %s, got %s", want, kindName(n))
	return false
}
