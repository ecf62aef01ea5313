// Package codeshape holds the test that keeps the code's shape within the
// limits the README states: no source file over 450 lines, no non-test
// function over 60 lines or over cyclomatic complexity 15 (as gocyclo
// counts it, closures included).
package codeshape

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fzipp/gocyclo"
)

const (
	maxFileLines  = 450
	maxFuncLines  = 60
	maxComplexity = 15
)

// goFiles lists the module's Go files, relative to its root.
func goFiles(t *testing.T) (root string, files []string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin" || d.Name() == "demo") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found only %d Go files under %s", len(files), root)
	}
	return root, files
}

func TestFileLength(t *testing.T) {
	t.Parallel()
	root, files := goFiles(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > maxFileLines {
			rel, _ := filepath.Rel(root, f)
			t.Errorf("%s: %d lines; the limit is %d (split it by what its parts are about)", rel, n, maxFileLines)
		}
	}
}

func TestFunctionShape(t *testing.T) {
	t.Parallel()
	root, files := goFiles(t)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			if lines > maxFuncLines {
				t.Errorf("%s:%d: %s is %d lines; the limit is %d", rel, fset.Position(fn.Pos()).Line, fn.Name.Name, lines, maxFuncLines)
			}
		}
		for _, s := range gocyclo.AnalyzeASTFile(file, fset, nil) {
			if s.Complexity > maxComplexity {
				t.Errorf("%s:%d: %s has cyclomatic complexity %d; the limit is %d", rel, s.Pos.Line, s.FuncName, s.Complexity, maxComplexity)
			}
		}
	}
}
