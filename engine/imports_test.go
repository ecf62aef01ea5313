package engine_test

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/rootfsctl/rootfsctl/"

// projectImports lists the rootfsctl packages the non-test files in dir
// import.
func projectImports(t *testing.T, dir string) []string {
	t.Helper()
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatalf("read package %s: %v", dir, err)
	}
	var out []string
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, module) {
			out = append(out, strings.TrimPrefix(imp, module))
		}
	}
	return out
}

// TestEngineImportsOnlyLeaves: the engine knows no step type and no
// command; the only rootfsctl packages it uses are the retry policy, the
// concurrency budget and the span carrier of --trace, and they use none.
func TestEngineImportsOnlyLeaves(t *testing.T) {
	t.Parallel()
	allowed := []string{"internal/budget", "internal/retry", "internal/trace"}
	for _, imp := range projectImports(t, ".") {
		if !slices.Contains(allowed, imp) {
			t.Errorf("engine imports %s; it may import only %v", imp, allowed)
		}
	}
	for _, leaf := range allowed {
		if imps := projectImports(t, filepath.Join("..", leaf)); len(imps) > 0 {
			t.Errorf("%s imports %v; it must import no rootfsctl package", leaf, imps)
		}
	}
}
