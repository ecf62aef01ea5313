package main

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rootfsctl/rootfsctl/engine"
)

// sarifSchema is the OASIS SARIF 2.1.0 JSON Schema as go-sarif ships it,
// read from the module cache (go-sarif keeps it unexported), so that the
// raw output is checked by a second validator, not only by go-sarif's own
// round trip.
func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/owenrumney/go-sarif/v3").Output()
	if err != nil {
		t.Fatalf("go list go-sarif: %v", err)
	}
	file := filepath.Join(strings.TrimSpace(string(dir)), "pkg", "report", "v210", "sarif", "schema.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Names) == 1 && vs.Names[0].Name == "schema" {
			text, err = strconv.Unquote(vs.Values[0].(*ast.BasicLit).Value)
		}
		return true
	})
	if err != nil || !strings.Contains(text, "sarif-schema-2.1.0.json") {
		t.Fatalf("no SARIF 2.1.0 schema in %s: %v", file, err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sarif-schema-2.1.0.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validate --format sarif is a SARIF 2.1.0 log that the schema accepts and
// that says exactly what --format json says: one result per diagnostic, at
// the same file, line and column, with the same message. The corpus is every
// invalid plan of the engine's tests, a valid plan, a missing file and an
// absolute path.
func TestValidateSARIF(t *testing.T) {
	schema := sarifSchema(t)
	invalid, _ := filepath.Glob("../../engine/testdata/invalid/*.yaml")
	if len(invalid) < 10 {
		t.Fatalf("corpus: %d invalid plans", len(invalid))
	}
	abs, err := filepath.Abs(invalid[0])
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "odd name #1?.yaml") // in no checkout
	if err := os.WriteFile(outside, []byte("steps: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{{"../../plans/hello.yaml"}, {"no/such plan.yaml"}, {abs}, {"../../plans/hello.yaml", invalid[1]}, {outside}}
	for _, f := range invalid {
		cases = append(cases, []string{f})
	}
	for _, files := range cases {
		name := filepath.Base(files[len(files)-1])
		_, raw, _ := cli(t, context.Background(), append([]string{"validate", "--format", "sarif"}, files...)...)
		_, js, _ := cli(t, context.Background(), append([]string{"validate", "--format", "json"}, files...)...)
		var want engine.Diagnostics
		if err := json.Unmarshal([]byte(js), &want); err != nil {
			t.Fatalf("%s: json: %v\n%s", name, err, js)
		}
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: not JSON: %v\n%.300s", name, err, raw)
		}
		if err := schema.Validate(doc); err != nil {
			t.Errorf("%s: the SARIF 2.1.0 schema rejects the output: %v", name, err)
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		var rep sarif.Report
		if err := dec.Decode(&rep); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := rep.Validate(); err != nil {
			t.Errorf("%s: go-sarif's validation: %v", name, err)
		}
		if rep.Version != "2.1.0" || len(rep.Runs) != 1 {
			t.Fatalf("%s: version %q, %d runs", name, rep.Version, len(rep.Runs))
		}
		results := rep.Runs[0].Results
		if len(results) != len(want) {
			t.Fatalf("%s: %d results, json has %d diagnostics", name, len(results), len(want))
		}
		for i, r := range results {
			d := want[i]
			loc := r.Locations[0].PhysicalLocation
			u, err := url.Parse(*loc.ArtifactLocation.URI)
			if err != nil {
				t.Fatal(err)
			}
			if want := gitPath(t, d.File); u.Path != want || (u.Scheme == "file") != filepath.IsAbs(want) {
				t.Errorf("%s: result %d at %q, want %q (the diagnostic's %q)", name, i, *loc.ArtifactLocation.URI, want, d.File)
			}
			var line, col int
			if loc.Region != nil {
				line, col = deref(loc.Region.StartLine), deref(loc.Region.StartColumn)
			}
			if line != d.Line || col != d.Col || *r.Message.Text != d.Message || *r.RuleID != sarifRule || r.Level != "error" {
				t.Errorf("%s: result %d: %d:%d %q, want %s", name, i, line, col, *r.Message.Text, d)
			}
		}
	}
}

// gitPath is where code scanning expects a file: its path from the top of
// its git checkout (git's answer, not rootfsctl's), or its absolute path
// outside one.
func gitPath(t *testing.T, file string) string {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(abs)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		dir = filepath.Dir(dir) // a missing file's nearest existing directory
	}
	top, err := exec.Command("git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return filepath.ToSlash(abs)
	}
	rel, err := filepath.Rel(strings.TrimSpace(string(top)), abs)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(rel)
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// The exit code does not depend on the format.
func TestValidateSARIFExitCodes(t *testing.T) {
	if code, _, _ := cli(t, context.Background(), "validate", "--format", "sarif", "../../plans/hello.yaml"); code != exitOK {
		t.Errorf("valid plan: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("steps: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := cli(t, context.Background(), "validate", "--format", "sarif", bad); code != exitFailed {
		t.Errorf("invalid plan: exit %d, want %d", code, exitFailed)
	}
}

// GitHub annotations name a file from the top of its checkout too, so a
// CI step run in a subdirectory still annotates the right file.
func TestGitHubAnnotationsNameCheckoutPaths(t *testing.T) {
	file := "../../engine/testdata/invalid/needs.yaml"
	_, out, _ := cli(t, context.Background(), "validate", "--format", "github", file)
	want := "::error file=" + gitPath(t, file) + ",line="
	if gitPath(t, file) == filepath.ToSlash(file) || !strings.HasPrefix(out, want) {
		t.Errorf("got %q, want prefix %q", out, want)
	}
}
