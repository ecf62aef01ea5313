package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rootfsctl/rootfsctl/engine"
)

// echoParams is a step type for expansion tests: strings in every shape a
// parameter can take (scalar, list, map, nested struct).
type echoParams struct {
	Value  string            `yaml:"value"`
	List   []string          `yaml:"list"`
	Map    map[string]string `yaml:"map"`
	Nested struct {
		Inner string `yaml:"inner"`
	} `yaml:"nested"`
}

type echoStep struct{ engine.Step }

func echoRegistry() *engine.Registry {
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "echo", Summary: "Test step."}, echoParams{}, func(string, *echoParams) (engine.Step, error) { return echoStep{}, nil })
	return reg
}

// refExpand is the reference: the README's rules written as plainly as
// possible. "$${" is a literal "${"; "${name}" is the value of name, which
// may itself use variables; anything else after "${" is an error.
var refToken = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}`)

func refExpand(s string, vars map[string]string, depth int) (string, bool) {
	if depth > 10 {
		return "", false
	}
	var out strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			out.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			m := refToken.FindStringSubmatch(s[i:])
			if m == nil {
				return "", false
			}
			raw, ok := vars[m[1]]
			if !ok {
				return "", false
			}
			v, ok := refExpand(raw, vars, depth+1)
			if !ok {
				return "", false
			}
			out.WriteString(v)
			i += len(m[0])
		default:
			out.WriteByte(s[i])
			i++
		}
	}
	return out.String(), true
}

// pieces are what random values are made of: text, escapes, references
// (repeated and nested through other variables), and broken references.
var (
	pieces = []string{"a", "b c", "/", "}", "$$", "$${", "${v0}", "${v1}", "${v2}", "${v3}",
		"${host.arch}", "${plan.dir}", "$${v1}", "é", ":", "#", "{a}", "$ "}
	broken = []string{"$", "{", "${", "${}", "${nope}", "${v0", "${a b}"}
)

func randomValue(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range rng.IntN(n) + 1 {
		if rng.IntN(40) == 0 {
			b.WriteString(broken[rng.IntN(len(broken))])
		} else {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
	}
	return b.String()
}

// TestExpansionMatchesReference: random plans mixing text, $${, repeated and
// nested references and broken ones, loaded by the engine and expanded by
// the reference above, must agree on validity and on every value.
func TestExpansionMatchesReference(t *testing.T) {
	t.Parallel()
	reg := echoRegistry()
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	rng := rand.New(rand.NewPCG(8, 1))
	valid := 0
	const cases = 4000
	for i := range cases {
		// v_i may use v_j for j < i only, so the reference needs no cycle check.
		decl := map[string]string{}
		for v := range 4 {
			val := randomValue(rng, 4)
			for w := v; w < 4; w++ {
				val = strings.ReplaceAll(val, fmt.Sprintf("${v%d}", w), "x")
			}
			decl[fmt.Sprintf("v%d", v)] = val
		}
		value, item, inner := randomValue(rng, 6), randomValue(rng, 4), randomValue(rng, 4)
		doc := map[string]any{
			"apiVersion": "rootfsctl/v1", "kind": "Plan", "name": "prop", "vars": decl,
			"steps": map[string]any{"s": map[string]any{"type": "echo", "with": map[string]any{
				"value": value, "list": []string{item, value}, "map": map[string]string{"k": inner},
				"nested": map[string]string{"inner": inner},
			}}},
		}
		src, err := yaml.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		all := map[string]string{"host.arch": testHost.Arch, "plan.dir": dir}
		varsOK := true
		for k, v := range decl {
			all[k] = v
		}
		// Every declared var is resolved, used or not.
		for k := range decl {
			if _, ok := refExpand(decl[k], all, 0); !ok {
				varsOK = false
			}
		}
		wantValue, ok1 := refExpand(value, all, 0)
		wantItem, ok2 := refExpand(item, all, 0)
		wantInner, ok3 := refExpand(inner, all, 0)
		wantValid := varsOK && ok1 && ok2 && ok3

		p, err := engine.Parse(file, src, engine.LoadOptions{Registry: reg, Host: testHost})
		var ds engine.Diagnostics
		switch {
		case err != nil && !errors.As(err, &ds):
			t.Fatalf("case %d: Parse() returned %v, want a plan or Diagnostics\n%s", i, err, src)
		case wantValid && err != nil:
			t.Fatalf("case %d: Parse() rejected a valid plan:\n%s\n%v", i, src, err)
		case !wantValid && err == nil:
			t.Fatalf("case %d: Parse() accepted a plan the reference rejects:\n%s", i, src)
		case !wantValid:
			continue
		}
		valid++
		got := p.Steps[0].Params.(*echoParams)
		if got.Value != wantValue || got.List[0] != wantItem || got.List[1] != wantValue ||
			got.Map["k"] != wantInner || got.Nested.Inner != wantInner {
			t.Fatalf("case %d: expansion differs from the reference\nplan:\n%s\ngot  %q %q %q %q\nwant %q %q %q %q",
				i, src, got.Value, got.List, got.Map["k"], got.Nested.Inner, wantValue, []string{wantItem, wantValue}, wantInner, wantInner)
		}
	}
	// The generator must exercise both outcomes well.
	if valid < cases/10 || valid > cases*9/10 {
		t.Errorf("%d of %d random plans were valid; the generator is lopsided", valid, cases)
	}
}

// TestRepeatedReference is the reported bug, kept by name: a variable used
// twice in one value.
func TestRepeatedReference(t *testing.T) {
	t.Parallel()
	src := "apiVersion: rootfsctl/v1\nkind: Plan\nname: dup\nvars: {w: W, m: M}\nsteps:\n  s:\n    type: echo\n" +
		"    with: {value: \"A${w}B${w}C\", list: [\"/x/${m}/${m}.nspawn\"]}\n"
	p, err := engine.Parse("dup.yaml", []byte(src), engine.LoadOptions{Registry: echoRegistry(), Host: testHost})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Steps[0].Params.(*echoParams)
	if got.Value != "AWBWC" || got.List[0] != "/x/M/M.nspawn" {
		t.Errorf("Parse(): value %q, list %q; want AWBWC and /x/M/M.nspawn", got.Value, got.List)
	}
}

// TestNoReferenceSurvivesExpansion: in every shipped and test plan that is
// valid, no parameter string still holds "${" unless the source escaped it.
func TestNoReferenceSurvivesExpansion(t *testing.T) {
	t.Parallel()
	reg := newRegistry(newTracker())
	files, _ := filepath.Glob("../plans/*.yaml")
	valid, _ := filepath.Glob("testdata/valid/*.yaml")
	files = append(files, valid...)
	if len(files) < 3 {
		t.Fatalf("found only %d plans", len(files))
	}
	for _, f := range files {
		p, err := engine.Load(f, engine.LoadOptions{Registry: reg, Host: testHost})
		if err != nil {
			t.Errorf("Load(%s): %v", f, err)
			continue
		}
		for _, s := range p.Steps {
			walkStrings(reflect.ValueOf(s.Params), func(v string) {
				if strings.Contains(v, "${") {
					t.Errorf("%s: step %s: %q still holds a reference after expansion", f, s.ID, v)
				}
			})
		}
	}
}

func walkStrings(v reflect.Value, f func(string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), f)
		}
	case reflect.String:
		f(v.String())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walkStrings(v.Field(i), f)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkStrings(v.Index(i), f)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkStrings(k, f)
			walkStrings(v.MapIndex(k), f)
		}
	}
}

// TestOverrideProblemsAreReportedOnce: a bad override is reported once,
// naming where it came from; its uses say nothing more.
func TestOverrideProblemsAreReportedOnce(t *testing.T) {
	t.Parallel()
	reg := newRegistry(newTracker())
	src := "apiVersion: rootfsctl/v1\nkind: Plan\nname: o\nvars:\n  file: /tmp/f\n  other: x\nsteps:\n" +
		"  a:\n    type: file\n    with: {path: \"${file}\", content: one}\n" +
		"  b:\n    type: file\n    with: {path: \"${file}.b\", content: \"${file}\"}\n"
	load := func(o ...engine.VarOverride) error {
		_, err := engine.Parse("o.yaml", []byte(src), engine.LoadOptions{Registry: reg, Host: testHost, Overrides: o})
		return err
	}
	err := load(engine.VarOverride{Name: "file", Value: "${nope}", Origin: "--var file"})
	var ds engine.Diagnostics
	if !errors.As(err, &ds) || len(ds) != 1 || ds[0].Message != "--var file: undefined variable ${nope}" || ds[0].Line != 5 {
		t.Errorf("undefined reference in an override: got %v, want one diagnostic at line 5 naming --var file", err)
	}
	err = load(engine.VarOverride{Name: "file", Value: "relative", Origin: "--var file"})
	if !errors.As(err, &ds) || len(ds) != 2 {
		t.Fatalf("relative path from an override: got %v, want two diagnostics (one per path use)", err)
	}
	for _, d := range ds {
		if !strings.HasSuffix(d.Message, "(value from --var file)") {
			t.Errorf("diagnostic %q does not say the value came from --var file", d)
		}
	}
	err = load(engine.VarOverride{Name: "fil", Value: "x", Origin: "--var fil"}, engine.VarOverride{Name: "other", Value: "y", Origin: "--var other"})
	var uv *engine.UnknownVarError
	if !errors.As(err, &uv) || len(uv.Unknown) != 1 || !strings.Contains(err.Error(), `--var fil: the plan declares no variable "fil" (did you mean "file"?)`) {
		t.Errorf("unknown override: got %v", err)
	}
}

// TestOptionalOverrides: an optional override (from the environment) of a
// name the plan does not declare is skipped; of a declared name it
// applies, and later overrides win over it.
func TestOptionalOverrides(t *testing.T) {
	t.Parallel()
	reg := newRegistry(newTracker())
	src := "apiVersion: rootfsctl/v1\nkind: Plan\nname: o\nvars:\n  file: /tmp/f\nsteps:\n  a:\n    type: file\n    with: {path: \"${file}\", content: one}\n"
	load := func(o ...engine.VarOverride) (*engine.Plan, error) {
		return engine.Parse("o.yaml", []byte(src), engine.LoadOptions{Registry: reg, Host: testHost, Overrides: o})
	}
	p, err := load(engine.VarOverride{Name: "elsewhere", Value: "x", Origin: "$ROOTFSCTL_VAR_elsewhere", Optional: true},
		engine.VarOverride{Name: "file", Value: "/env/f", Origin: "$ROOTFSCTL_VAR_file", Optional: true})
	if err != nil || p.Vars["file"] != "/env/f" {
		t.Fatalf("optional overrides: %v, file=%q", err, p.Vars["file"])
	}
	p, err = load(engine.VarOverride{Name: "file", Value: "/env/f", Origin: "$ROOTFSCTL_VAR_file", Optional: true},
		engine.VarOverride{Name: "file", Value: "/flag/f", Origin: "--var file"})
	if err != nil || p.Vars["file"] != "/flag/f" {
		t.Errorf("a later override: %v, file=%q, want /flag/f", err, p.Vars["file"])
	}
}
