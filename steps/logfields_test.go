package steps_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// TestLogDurationFieldsCarryTheirUnit: every duration in the steps' log
// events is written with zerolog's Dur (milliseconds) under a name ending
// in Ms, so a reader of the JSON knows the unit. This scans the source of
// the steps and of the internal packages they log through, so a new
// duration field cannot forget it.
func TestLogDurationFieldsCarryTheirUnit(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	scan := func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Dur" && sel.Sel.Name != "Durs") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			key, err := strconv.Unquote(lit.Value)
			if !ok || err != nil || !strings.HasSuffix(key, "Ms") {
				t.Errorf("%s: duration field %s: name it with an Ms suffix (zerolog writes milliseconds)", fset.Position(call.Pos()), lit.Value)
			}
			return true
		})
		return nil
	}
	for _, dir := range []string{".", "../internal"} {
		if err := filepath.WalkDir(dir, scan); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogDurationsInProvisioning: the unpack's duration and a download's
// wait before its retry appear as numbers under Ms names in a real run.
func TestLogDurationsInProvisioning(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	var failed atomic.Bool
	s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/kubelet") && !failed.Swap(true) {
			http.Error(w, "busy", http.StatusInternalServerError)
			return true
		}
		return false
	})
	var log bytes.Buffer
	rep, err := s.apply(mustCache(t), zerolog.New(zerolog.SyncWriter(&log)), nil)
	if err != nil || rep.Failed() {
		t.Fatalf("apply: %v %v", err, statusOf(rep))
	}
	found := map[string]bool{}
	for _, ev := range events(t, log.Bytes()) {
		for _, k := range []string{"tookMs", "retryInMs"} {
			if v, ok := ev[k]; ok {
				if _, isNum := v.(float64); !isNum {
					t.Errorf("%s = %v (%T), want a number of milliseconds", k, v, v)
				}
				found[k] = true
			}
		}
		for _, old := range []string{"took", "retryIn"} {
			if _, ok := ev[old]; ok && ev["step"] != nil {
				t.Errorf("event %v has %q without its unit", ev, old)
			}
		}
	}
	for _, k := range []string{"tookMs", "retryInMs"} {
		if !found[k] {
			t.Errorf("no event carries %s; log:\n%s", k, log.String())
		}
	}
}
