package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
)

// TestJSONOutputIsAlwaysOneDocument: with -o json, plan, apply and
// preflight print exactly one JSON document whatever happens after the
// flags are read, and --report holds the same document.
func TestJSONOutputIsAlwaysOneDocument(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   func(dir string) []string
		status engine.Outcome
		check  func(t *testing.T, doc map[string]any)
	}{
		{"ok", func(d string) []string { return []string{"apply", writePlan(nil, d, twoFiles)} }, engine.OutcomeOK, nil},
		{"invalid plan", func(d string) []string {
			return []string{"apply", writePlan(nil, d, "  a: {type: file, with: {path: relative}}\n")}
		}, engine.OutcomeInvalid, func(t *testing.T, doc map[string]any) {
			if ds, _ := doc["diagnostics"].([]any); len(ds) != 1 {
				t.Errorf("diagnostics: %v", doc["diagnostics"])
			}
		}},
		{"preflight failed", func(d string) []string {
			return []string{"apply", "../../plans/demo.yaml", "--var", "registry=127.0.0.1:1", "--var", "mirror=http://127.0.0.1:1", "--var", "out=" + d}
		}, engine.OutcomePreflightFailed, func(t *testing.T, doc map[string]any) {
			pre, _ := doc["preflight"].(map[string]any)
			if pre == nil || pre["status"] != "failed" {
				t.Errorf("preflight: %v", doc["preflight"])
			}
		}},
		{"step failed", func(d string) []string {
			return []string{"apply", writePlan(nil, d, "  boom: {type: run, with: {command: [\"false\"]}}\n")}
		}, engine.OutcomeFailed, func(t *testing.T, doc map[string]any) {
			if steps, _ := doc["steps"].([]any); len(steps) != 1 {
				t.Errorf("steps: %v", doc["steps"])
			}
		}},
		{"bad flag value", func(d string) []string { return []string{"apply", "-j", "0", writePlan(nil, d, twoFiles)} }, engine.OutcomeError,
			func(t *testing.T, doc map[string]any) {
				if !strings.Contains(doc["error"].(string), "--parallelism 0") {
					t.Errorf("error: %v", doc["error"])
				}
			}},
		{"bad --log-level", func(d string) []string { return []string{"apply", "--log-level", "bogus", writePlan(nil, d, twoFiles)} }, engine.OutcomeError,
			func(t *testing.T, doc map[string]any) {
				if !strings.Contains(doc["error"].(string), "--log-level") {
					t.Errorf("error: %v", doc["error"])
				}
			}},
		{"unknown target", func(d string) []string { return []string{"plan", "--target", "nope", writePlan(nil, d, twoFiles)} }, engine.OutcomeError,
			func(t *testing.T, doc map[string]any) {
				if !strings.Contains(doc["error"].(string), `--target nope: no step "nope"`) {
					t.Errorf("error: %v", doc["error"])
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			report := filepath.Join(dir, "report.json")
			args := append(tc.args(dir), "-o", "json", "--report", report)
			_, out, errOut := cli(t, context.Background(), args...)
			dec := json.NewDecoder(strings.NewReader(out))
			var doc map[string]any
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("stdout is not a JSON document: %v\n%s\nstderr:\n%s", err, out, errOut)
			}
			if dec.More() {
				t.Errorf("stdout holds more than one document:\n%s", out)
			}
			if doc["status"] != string(tc.status) {
				t.Errorf("status %v, want %s\n%s", doc["status"], tc.status, out)
			}
			if tc.check != nil {
				tc.check(t, doc)
			}
			data, err := os.ReadFile(report)
			if err != nil {
				t.Fatalf("--report was not written: %v", err)
			}
			if !bytes.Equal(bytes.TrimSpace(data), bytes.TrimSpace([]byte(out))) {
				t.Errorf("--report differs from stdout:\n%s\n---\n%s", data, out)
			}
		})
	}
}

// TestLogDurationsCarryTheirUnit: every duration in the JSON logs is in a
// field whose name ends in Ms.
func TestLogDurationsCarryTheirUnit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	plan := writePlan(t, dir, "  flaky:\n    type: run\n    retry: {attempts: 2, delay: 10ms}\n    with: {command: [sh, -c, 'test -e "+dir+"/once || { touch "+dir+"/once; exit 3; }']}\n")
	_, _, errOut := cli(t, context.Background(), "apply", "--log-level", "debug", plan)
	var seen int
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			continue
		}
		for k, v := range ev {
			if _, isNum := v.(float64); isNum && regexp.MustCompile(`(?i)(duration|took|retryin|elapsed|wait)$`).MatchString(k) {
				t.Errorf("log field %q=%v has no unit in its name: %s", k, v, line)
			}
			if strings.HasSuffix(k, "Ms") {
				seen++
			}
		}
	}
	if seen < 2 {
		t.Errorf("found %d duration fields ending in Ms, want the step durations and the retry wait:\n%s", seen, errOut)
	}
}

// TestJSONLogsStayJSON: with JSON logs, every stderr line is a JSON
// object, the final error included.
func TestJSONLogsStayJSON(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"apply", writePlan(t, t.TempDir(), "  boom: {type: run, with: {command: [\"false\"]}}\n")},
		{"apply", "-j", "0", writePlan(t, t.TempDir(), twoFiles)},
		{"apply", writePlan(t, t.TempDir(), "  a: {type: fiel}\n")},
	} {
		code, _, errOut := cli(t, context.Background(), args...)
		var last map[string]any
		for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
			if err := json.Unmarshal([]byte(line), &last); err != nil {
				t.Errorf("%v: stderr line is not JSON: %q", args, line)
			}
		}
		if last["level"] != "error" || int(last["exitCode"].(float64)) != code {
			t.Errorf("%v: the last line is not the error with the exit code %d: %v", args, code, last)
		}
	}
}
