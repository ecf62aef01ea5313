package ci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// action is the part of action.yml a runner reads to run a composite action.
type action struct {
	Inputs map[string]struct {
		Default string `yaml:"default"`
	} `yaml:"inputs"`
	Runs struct {
		Using string `yaml:"using"`
		Steps []struct {
			ID    string            `yaml:"id"`
			Shell string            `yaml:"shell"`
			Run   string            `yaml:"run"`
			Env   map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

var inputRef = regexp.MustCompile(`\$\{\{\s*inputs\.([a-z-]+)\s*\}\}`)

// runAction runs action.yml's steps as a GitHub runner would: inputs given
// or defaulted, ${{ inputs.x }} substituted into each step's env, the run
// line under bash, with the runner's variables. It returns the exit code,
// the output and what the step wrote to GITHUB_OUTPUT and GITHUB_PATH.
func runAction(t *testing.T, ws string, with map[string]string) (int, string, string, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a action
	if err := yaml.Unmarshal(data, &a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if a.Runs.Using != "composite" || len(a.Runs.Steps) == 0 {
		t.Fatalf("action.yml: runs.using %q with %d steps", a.Runs.Using, len(a.Runs.Steps))
	}
	for k := range with {
		if _, ok := a.Inputs[k]; !ok {
			t.Fatalf("action.yml has no input %q", k)
		}
	}
	tmp := t.TempDir()
	outFile, pathFile := filepath.Join(tmp, "output"), filepath.Join(tmp, "path")
	arch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	var out bytes.Buffer
	code := 0
	for _, s := range a.Runs.Steps {
		if s.Shell != "bash" {
			t.Fatalf("step %s: shell %q", s.ID, s.Shell)
		}
		env := append(os.Environ(), "GITHUB_ACTION_PATH="+repo, "GITHUB_WORKSPACE="+ws, "RUNNER_TEMP="+tmp,
			"RUNNER_OS=Linux", "RUNNER_ARCH="+arch, "GITHUB_OUTPUT="+outFile, "GITHUB_PATH="+pathFile, "GITHUB_ACTIONS=true")
		for k, v := range s.Env {
			v = inputRef.ReplaceAllStringFunc(v, func(ref string) string {
				name := inputRef.FindStringSubmatch(ref)[1]
				in, ok := a.Inputs[name]
				if !ok {
					t.Fatalf("step %s: env %s uses undeclared input %q", s.ID, k, name)
				}
				if v, ok := with[name]; ok {
					return v
				}
				return in.Default
			})
			env = append(env, k+"="+v)
		}
		cmd := exec.Command("bash", "-e", "-c", s.Run)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = ws, env, &out, &out
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
			break
		}
	}
	o, _ := os.ReadFile(outFile)
	p, _ := os.ReadFile(pathFile)
	return code, out.String(), string(o), string(p)
}

// Every input is passed to the script, and the script reads every one.
func TestActionInputsReachTheScript(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repo, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a action
	if err := yaml.Unmarshal(data, &a); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(repo, ".github", "action", "validate.sh"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, s := range a.Runs.Steps {
		for k, v := range s.Env {
			for _, m := range inputRef.FindAllStringSubmatch(v, -1) {
				used[m[1]] = true
			}
			if !strings.Contains(string(script), k) {
				t.Errorf("env %s is never read by validate.sh", k)
			}
		}
	}
	for name := range a.Inputs {
		if !used[name] {
			t.Errorf("input %q reaches no step", name)
		}
	}
}

// version: source builds rootfsctl from the action's checkout; a broken
// plan becomes an ::error annotation at its line and column, the step fails,
// and the problem count and a SARIF log come out.
func TestActionFromSource(t *testing.T) {
	need(t, "go", "version: source builds with Go")
	ws := workspace(t, true)
	sarif := filepath.Join(ws, "out.sarif")
	code, out, outputs, path := runAction(t, ws, map[string]string{"version": "source", "plans": "plans/*.yaml", "sarif-file": sarif})
	if code != 1 {
		t.Fatalf("exit %d, want 1 (an invalid plan):\n%s", code, out)
	}
	want := `::error file=plans/broken.yaml,line=6,col=11::a: unknown step type "nope"`
	if !strings.Contains(out, want) {
		t.Errorf("no annotation %q in:\n%s", want, out)
	}
	if strings.Contains(out, "good.yaml,") {
		t.Errorf("the valid plan was annotated:\n%s", out)
	}
	if !strings.Contains(outputs, "problems=1\n") {
		t.Errorf("GITHUB_OUTPUT: %q, want problems=1", outputs)
	}
	if !strings.HasSuffix(strings.TrimSpace(path), "rootfsctl-bin") {
		t.Errorf("GITHUB_PATH: %q", path)
	}
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID string `json:"ruleId"`
			} `json:"results"`
		} `json:"runs"`
	}
	data, err := os.ReadFile(sarif)
	if err != nil || json.Unmarshal(data, &log) != nil || len(log.Runs) != 1 || len(log.Runs[0].Results) != 1 {
		t.Errorf("sarif-file: %v\n%.300s", err, data)
	}
}

// release serves a fake release page on loopback: the archive of a freshly
// built rootfsctl and checksums.txt, under latest/download and
// download/TAG, the layout goreleaser's archives and GitHub use.
func release(t *testing.T, tamper bool) (string, *[]string) {
	t.Helper()
	bin := buildRootfsctl(t)
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return serveRelease(t, exe, tamper)
}

// serveRelease serves exe as the release's rootfsctl.
func serveRelease(t *testing.T, exe []byte, tamper bool) (string, *[]string) {
	t.Helper()
	archive := tarGz(t, &tar.Header{Name: "README.md", Mode: 0o644, Size: 7, Typeflag: tar.TypeReg}, []byte("readme\n"),
		&tar.Header{Name: "rootfsctl", Mode: 0o755, Size: int64(len(exe)), Typeflag: tar.TypeReg}, exe)
	sum := sha256.Sum256(archive)
	sums := fmt.Sprintf("%s  %s\n%s  rootfsctl_linux_other.tar.gz\n", hex.EncodeToString(sum[:]), archiveName, strings.Repeat("0", 64))
	if tamper {
		archive = append([]byte(nil), archive...)
		archive[len(archive)/2] ^= 1
	}
	return serveRaw(t, archive, sums)
}

var archiveName = "rootfsctl_linux_" + runtime.GOARCH + ".tar.gz"

// tarGz makes a gzipped tar of header, content pairs.
func tarGz(t *testing.T, parts ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := 0; i < len(parts); i += 2 {
		if err := tw.WriteHeader(parts[i].(*tar.Header)); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(parts[i+1].([]byte)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serveRaw serves an archive and a checksums.txt as a release page.
func serveRaw(t *testing.T, archive []byte, sums string) (string, *[]string) {
	t.Helper()
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path)
		dir := filepath.Dir(r.URL.Path)
		if dir != "/releases/latest/download" && filepath.Dir(dir) != "/releases/download" {
			http.NotFound(w, r)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/"+archiveName):
			_, _ = w.Write(archive)
		case strings.HasSuffix(r.URL.Path, "/checksums.txt"):
			_, _ = w.Write([]byte(sums))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/releases", &asked
}

// version: latest and a tag download the release archive, check it against
// checksums.txt, and validate with it.
func TestActionFromRelease(t *testing.T) {
	url, asked := release(t, false)
	for _, tc := range []struct{ version, path string }{
		{"latest", "/releases/latest/download/"},
		{"v1.2.3", "/releases/download/v1.2.3/"},
	} {
		*asked = nil
		ws := workspace(t, false)
		code, out, outputs, _ := runAction(t, ws, map[string]string{"version": tc.version, "release-url": url})
		if code != 0 {
			t.Fatalf("%s: exit %d:\n%s", tc.version, code, out)
		}
		if !strings.Contains(out, "rootfsctl v0.0.0-test") || !strings.Contains(outputs, "problems=0") {
			t.Errorf("%s: output %q, outputs %q", tc.version, out, outputs)
		}
		if len(*asked) != 2 || !strings.HasPrefix((*asked)[0], tc.path) {
			t.Errorf("%s: asked for %v, want two files under %s", tc.version, *asked, tc.path)
		}
	}
}

// A download that does not match checksums.txt is not run; neither are
// unknown versions, and a glob that matches nothing is an error, not a
// silent pass.
func TestActionRefusesBadInput(t *testing.T) {
	url, _ := release(t, true)
	for _, tc := range []struct {
		with map[string]string
		want string
	}{
		{map[string]string{"release-url": url}, "sha256"},
		{map[string]string{"release-url": url, "version": "main"}, `version: "main"`},
		{map[string]string{"release-url": url + "/nothing-here"}, "download"},
		{map[string]string{"version": "source", "plans": "plans/*.yaml sites/*.yaml"}, `"sites/*.yaml" matches no file`},
	} {
		ws := workspace(t, false)
		code, out, _, _ := runAction(t, ws, tc.with)
		if code != 2 || !strings.Contains(out, "::error title=rootfsctl action::") || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want 2 and an error with %q:\n%s", tc.with, code, tc.want, out)
		}
		if strings.Contains(out, "valid") {
			t.Errorf("%v: validated anyway:\n%s", tc.with, out)
		}
	}
}

// Variables are one NAME=VALUE per line, values with spaces included; a
// variable no plan declares fails the step with an annotation that says so.
func TestActionVars(t *testing.T) {
	url, _ := release(t, false)
	ws := workspace(t, false)
	code, out, _, _ := runAction(t, ws, map[string]string{"release-url": url, "vars": "greeting=Hello big world\r\n\n  \nout=/tmp/x\n"})
	if code != 0 {
		t.Errorf("vars with spaces: exit %d:\n%s", code, out)
	}
	code, out, outputs, _ := runAction(t, ws, map[string]string{"release-url": url, "vars": "nosuchvar=1"})
	if code != 2 || !strings.Contains(out, "::error title=rootfsctl action::rootfsctl validate exited 64") || !strings.Contains(out, "nosuchvar") {
		t.Errorf("unknown var: exit %d, want 2 and an annotation naming it:\n%s", code, out)
	}
	if strings.Contains(outputs, "problems=0") {
		t.Errorf("a failed validation reported problems=0: %q", outputs)
	}
}

// A release binary that does not run on the runner is an annotated error,
// and is not put on PATH.
func TestActionBinaryMustRun(t *testing.T) {
	url, _ := serveRelease(t, []byte("#!/bin/sh\necho 'cannot execute binary file' >&2\nexit 126\n"), false)
	code, out, _, path := runAction(t, workspace(t, false), map[string]string{"release-url": url})
	if code != 2 || !strings.Contains(out, "does not run here") || path != "" {
		t.Errorf("exit %d, GITHUB_PATH %q:\n%s", code, path, out)
	}
}

// Hostile releases and inputs: a link in place of the binary, a checksums
// file that lists the archive twice, a tag that climbs out of download/,
// a plans word that would be a flag, a SARIF file that cannot be written.
// Each is an annotated error; nothing runs, nothing outside RUNNER_TEMP
// changes.
func TestActionRefusesHostileReleases(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "target")
	write(t, outside, "#!/bin/sh\necho pwned\n")
	link := tarGz(t, &tar.Header{Name: "rootfsctl", Typeflag: tar.TypeSymlink, Linkname: outside, Mode: 0o777}, []byte{})
	sum := sha256.Sum256(link)
	linkURL, _ := serveRaw(t, link, hex.EncodeToString(sum[:])+"  "+archiveName+"\r\n")
	good, _ := release(t, false)
	twice, _ := serveRaw(t, link, hex.EncodeToString(sum[:])+"  "+archiveName+"\n"+strings.Repeat("1", 64)+"  "+archiveName+"\n")
	for _, tc := range []struct {
		with map[string]string
		want string
	}{
		{map[string]string{"release-url": linkURL}, "not a regular file"},
		{map[string]string{"release-url": twice}, "different sums"},
		{map[string]string{"release-url": good, "version": "v1/../../latest/download"}, `version: "v1/../../latest/download"`},
		{map[string]string{"release-url": good, "plans": "--help"}, `"--help" is not a file or glob`},
		{map[string]string{"release-url": good, "sarif-file": "no/such/dir/r.sarif"}, "sarif-file: cannot write"},
	} {
		code, out, _, _ := runAction(t, workspace(t, false), tc.with)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Contains(out, "pwned") || strings.Contains(out, "plan(s) valid") {
			t.Errorf("%v: exit %d, want 2 and %q:\n%s", tc.with, code, tc.want, out)
		}
	}
	if fi, err := os.Stat(outside); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the link's target changed: %v %v", fi.Mode(), err)
	}
}
