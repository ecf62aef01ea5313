package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryCommandIsInTheREADME: the README's command table and the
// commands rootfsctl has are the same set.
func TestEveryCommandIsInTheREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `rootfsctl ([a-z]+)").FindAllStringSubmatch(string(readme), -1) {
		inTable[m[1]] = true
	}
	for _, c := range newApp(nil, nil).rootCommand().Commands() {
		if c.Hidden || c.Name() == "help" {
			continue
		}
		if !inTable[c.Name()] {
			t.Errorf("command %s is not in the README's command table", c.Name())
		}
		delete(inTable, c.Name())
	}
	for name := range inTable {
		t.Errorf("the README's command table lists %s, which rootfsctl does not have", name)
	}
}

// TestVariableSources holds the README's order of variable sources: the
// environment, then --var-file in order, then --var; an environment
// variable for a name the plan does not declare is ignored, a file's is
// an error naming the file and line; a file that is not a mapping says
// where.
func TestVariableSources(t *testing.T) {
	dir := t.TempDir()
	plan := writePlan(t, dir, "  a:\n    type: file\n    with: {path: \"${out}/${name}\", content: \"${name}\"}\n")
	src, _ := os.ReadFile(plan)
	if err := os.WriteFile(plan, []byte(strings.Replace(string(src), "vars:\n", "vars:\n  name: plan\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	one, two := write("one.yaml", "name: file1\n"), write("two.yaml", "# site\nname: file2\n")
	unknown, list := write("unknown.yaml", "nam: x\n"), write("list.yaml", "- name\n")
	twice, docs := write("twice.yaml", "name: a\nname: b\n"), write("docs.yaml", "name: a\n---\nname: b\n")
	t.Setenv("ROOTFSCTL_VAR_name", "env")
	t.Setenv("ROOTFSCTL_VAR_undeclared", "ignored")
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "env"},
		{[]string{"--var-file", one}, "file1"},
		{[]string{"--var-file", one, "--var-file", two}, "file2"},
		{[]string{"--var-file", two, "--var-file", one}, "file1"},
		{[]string{"--var", "name=flag", "--var-file", two}, "flag"},
	} {
		code, stdout, stderr := cli(t, ctx, append([]string{"apply", "-o", "json", plan}, tc.args...)...)
		got, _ := os.ReadFile(filepath.Join(dir, "out", tc.want))
		if code != 0 || string(got) != tc.want {
			t.Errorf("%v: exit %d, %s holds %q\n%s%s", tc.args, code, tc.want, got, stdout, stderr)
		}
	}
	code, _, stderr := cli(t, ctx, "validate", "--var-file", unknown, plan)
	if code != exitUsage || !strings.Contains(stderr, "unknown.yaml:1") {
		t.Errorf("an undeclared name in a var file: exit %d\n%s", code, stderr)
	}
	huge := write("huge.yaml", "name: "+strings.Repeat("x", maxVarFile)+"\n")
	code, _, stderr = cli(t, ctx, "validate", "--var-file", huge, plan)
	if code != exitUsage || !strings.Contains(stderr, "huge.yaml") || !strings.Contains(stderr, "1048576 bytes") {
		t.Errorf("a var file over the limit: exit %d\n%s", code, stderr)
	}
	for file, msg := range map[string]string{twice: "twice.yaml:2:1: name is set twice (first on line 1)", docs: "docs.yaml:2: want one YAML document"} {
		if code, _, stderr := cli(t, ctx, "validate", "--var-file", file, plan); code != exitUsage || !strings.Contains(stderr, msg) {
			t.Errorf("--var-file %s: exit %d, want %q\n%s", filepath.Base(file), code, msg, stderr)
		}
	}
	code, _, stderr = cli(t, ctx, "validate", "--var-file", list, plan)
	if code != exitUsage || !strings.Contains(stderr, "list.yaml:1:1: want a mapping") {
		t.Errorf("a var file that is a list: exit %d\n%s", code, stderr)
	}
}

// TestHostConfigMirror: the host config's mirror is used when neither
// --mirror nor $ROOTFSCTL_MIRROR is set, and a bad key is an error
// naming the file.
func TestHostConfigMirror(t *testing.T) {
	dir := t.TempDir()
	plan := writePlan(t, dir, twoFiles)
	cfg := filepath.Join(dir, "config.yaml")
	t.Setenv("ROOTFSCTL_CONFIG", cfg)
	ctx := context.Background()
	if err := os.WriteFile(cfg, []byte("mirror: ftp://nowhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, ctx, "plan", plan)
	if code != exitUsage || !strings.Contains(stderr, "config.yaml: mirror") || !strings.Contains(stderr, "unknown mirror scheme") {
		t.Errorf("a bad mirror in the host config: exit %d\n%s", code, stderr)
	}
	t.Setenv("ROOTFSCTL_MIRROR", "oci-layout:"+dir)
	if code, _, stderr = cli(t, ctx, "plan", plan); code != 0 {
		t.Errorf("$ROOTFSCTL_MIRROR wins over the host config: exit %d\n%s", code, stderr)
	}
	if err := os.WriteFile(cfg, []byte("mirorr: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = cli(t, ctx, "plan", plan); code != exitUsage || !strings.Contains(stderr, `unknown key \"mirorr\" (did you mean \"mirror\"?)`) {
		t.Errorf("an unknown key in the host config: exit %d\n%s", code, stderr)
	}
}
