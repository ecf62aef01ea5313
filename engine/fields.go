package engine

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// A parameter struct's tags say how its fields are written in plans: `yaml`
// names the key (",inline" flattens an embedded struct, "x-*" accepts and
// ignores keys with that prefix), `jsonschema` carries required, enum=,
// pattern=, minimum=, maximum= and minItems=. Defaults are not in tags: a
// step type registers a default value (Register). The decoder, the schema
// and `rootfsctl steps` all read this one description.

// field is what the tags of one struct field say.
type field struct {
	index    []int // reflect.Value.FieldByIndex path, through inline structs
	name     string
	required bool
	enum     []string
	pattern  *regexp.Regexp
	minimum  *int64
	maximum  *int64
	minItems int
}

func (f *field) constrained() bool { return f != nil && (len(f.enum) > 0 || f.pattern != nil) }

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

var fieldSets sync.Map // reflect.Type -> fieldSet

// structFields describes t's fields, once per type.
func structFields(t reflect.Type) fieldSet {
	if fs, ok := fieldSets.Load(t); ok {
		return fs.(fieldSet)
	}
	fs := fieldSet{byName: map[string]field{}}
	fs.add(t, nil)
	fieldSets.Store(t, fs)
	return fs
}

func (fs *fieldSet) add(t reflect.Type, at []int) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		index := append(append([]int(nil), at...), i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
			continue
		case opts == "inline" && sf.Type.Kind() == reflect.Struct:
			fs.add(sf.Type, index)
			continue
		case name == "":
			name = strings.ToLower(sf.Name[:1]) + sf.Name[1:]
		}
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			fs.prefixes = append(fs.prefixes, prefix)
			continue
		}
		if _, dup := fs.byName[name]; dup {
			panic(fmt.Sprintf("engine: %s: two fields are called %q", t, name))
		}
		f := parseTag(t, sf, index, name)
		fs.list = append(fs.list, f)
		fs.byName[name] = f
		fs.names = append(fs.names, name)
	}
}

func parseTag(t reflect.Type, sf reflect.StructField, index []int, name string) field {
	f := field{index: index, name: name}
	for _, item := range splitTag(sf.Tag.Get("jsonschema")) {
		key, val, _ := strings.Cut(item, "=")
		switch key {
		case "required":
			f.required = true
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
		case "default":
			panic(fmt.Sprintf("engine: %s.%s: defaults are values given to Register, not tags", t, sf.Name))
		}
	}
	return f
}

// splitTag splits a jsonschema tag on commas that are not escaped with a
// backslash.
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

// isStruct reports whether t is decoded field by field (a struct that is
// neither a YAML node nor a value that reads itself from text).
func isStruct(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != yamlNodeType && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// defaultOf is the default of field f within the default value def of the
// struct holding it, or an invalid value when there is none.
func defaultOf(def reflect.Value, f field) reflect.Value {
	for def.IsValid() && def.Kind() == reflect.Pointer {
		if def.IsNil() {
			return reflect.Value{}
		}
		def = def.Elem()
	}
	if !def.IsValid() {
		return reflect.Value{}
	}
	return def.FieldByIndex(f.index)
}
