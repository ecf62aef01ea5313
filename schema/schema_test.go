package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/schema"
	"github.com/rootfsctl/rootfsctl/steps"
)

var update = flag.Bool("update", false, "rewrite plan.schema.json from the Go types")

func registry() *engine.Registry {
	reg := engine.NewRegistry()
	steps.Register(reg, steps.Options{})
	return reg
}

// TestSchemaInSync: the committed schema is exactly what the Go parameter
// types generate.
func TestSchemaInSync(t *testing.T) {
	got, err := engine.Schema(registry())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("plan.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, schema.JSON) {
		t.Fatal("schema/plan.schema.json is out of date with the step types: run `go test ./schema -update` (or `make schema`) and commit it")
	}
}

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.JSON))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("plan.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("plan.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

// schemaCheck validates a YAML file against the schema, as an editor would.
func schemaCheck(s *jsonschema.Schema, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

func validate(file string) error {
	_, err := engine.Load(file, engine.LoadOptions{Registry: registry(), Host: engine.Host{Arch: "amd64", OS: "linux", Hostname: "h", Kernel: "k"}})
	return err
}

func TestShippedPlansAreValid(t *testing.T) {
	s := compile(t)
	plans, _ := filepath.Glob("../plans/*.yaml")
	if len(plans) == 0 {
		t.Fatal("no plans under plans/")
	}
	for _, p := range plans {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if err := schemaCheck(s, p); err != nil {
				t.Errorf("schema rejects %s:\n%v", p, err)
			}
			if err := validate(p); err != nil {
				t.Errorf("validate rejects %s:\n%v", p, err)
			}
		})
	}
}

// schemaBlind are invalid plans whose problem a JSON Schema cannot express.
var schemaBlind = map[string]string{
	"cycles.yaml":        "dependency cycles need the graph",
	"vars-bomb.yaml":     "the size of an expanded variable needs expansion",
	"vars-override.yaml": "an undefined variable needs expansion",
	"two-documents.yaml": "a schema judges one document; the second is the file's",
}

func TestInvalidPlansFailBoth(t *testing.T) {
	s := compile(t)
	files, _ := filepath.Glob("../engine/testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no invalid plans found")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			var ds engine.Diagnostics
			if err := validate(f); !errors.As(err, &ds) {
				t.Errorf("validate accepts %s (err %v)", f, err)
			}
			err := schemaCheck(s, f)
			if why, blind := schemaBlind[name]; blind {
				if err == nil {
					return
				}
				t.Logf("schema also rejects %s, though listed as blind (%s)", name, why)
				return
			}
			if err == nil {
				t.Errorf("schema accepts %s", f)
			}
		})
	}
}

// TestInterpolatedValuesPassSchema: typed fields given as ${var} (before
// expansion, as an editor sees them) are accepted by the schema.
func TestInterpolatedValuesPassSchema(t *testing.T) {
	s := compile(t)
	f := filepath.Join(t.TempDir(), "p.yaml")
	src := strings.Join([]string{
		"apiVersion: rootfsctl/v1", "kind: Plan", "name: p", "vars: {mode: '0600', n: 3}",
		"steps:", "  f:", "    type: file", "    retry: {attempts: 2}",
		"    with: {path: /tmp/x, content: y, mode: '${mode}'}", ""}, "\n")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := schemaCheck(s, f); err != nil {
		t.Errorf("schema rejects interpolated mode: %v", err)
	}
	if err := validate(f); err != nil {
		t.Errorf("validate rejects interpolated mode: %v", err)
	}
}

// schemaCannotSee are corpus cases that are invalid for reasons a JSON
// Schema cannot express; the schema accepts them and validate does not.
// Every other case must get the same verdict from both.
var schemaCannotSee = map[string]string{
	"needs-unknown-step":         "needs naming other steps are cross-references",
	"undefined-variable":         "variables are resolved by expansion",
	"mode-with-non-octal-digits": "a schema cannot check the digits of a number (0999 is the integer 999 to an editor)",
	"path-climbs-to-root":        "paths are cleaned before they are checked; a schema cannot clean a path",
	"retry-delay-past-max":       "a schema cannot compare two values (delay and maxDelay)",
	"integer-written-as-float":   "JSON Schema counts 2.0 as an integer; rootfsctl wants an integer written as one",
}

// TestSchemaAgreesWithValidate is the differential test: one corpus of
// plans, each labelled, judged by the JSON Schema (as an editor would) and
// by the validator.
func TestSchemaAgreesWithValidate(t *testing.T) {
	s := compile(t)
	data, err := os.ReadFile("testdata/corpus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seen := map[string]bool{}
	for i, doc := range strings.Split(string(data), "\n---\n") {
		label, name := corpusLabel(doc)
		if label == "" || name == "" {
			t.Fatalf("corpus document %d has no '# want:' label or no name", i)
		}
		if seen[name] {
			t.Fatalf("corpus: two cases named %s", name)
		}
		seen[name] = true
		file := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			verr, serr := validate(file), schemaCheck(s, file)
			if (label == "valid") != (verr == nil) {
				t.Errorf("validate: labelled %s, got error %v", label, verr)
			}
			if why, blind := schemaCannotSee[name]; blind {
				if serr != nil {
					t.Errorf("listed as invisible to the schema (%s), but the schema rejects it: %v", why, serr)
				}
				return
			}
			if (label == "valid") != (serr == nil) {
				t.Errorf("schema: labelled %s, got error %#v", label, serr)
			}
		})
	}
	for name := range schemaCannotSee {
		if !seen[name] {
			t.Errorf("schemaCannotSee lists %s, which is not in the corpus", name)
		}
	}
}

func corpusLabel(doc string) (label, name string) {
	for _, line := range strings.Split(doc, "\n") {
		if l, ok := strings.CutPrefix(line, "# want: "); ok {
			label = strings.TrimSpace(l)
		}
		if n, ok := strings.CutPrefix(line, "name: "); ok && name == "" {
			name = strings.TrimSpace(n)
		}
	}
	return label, name
}
