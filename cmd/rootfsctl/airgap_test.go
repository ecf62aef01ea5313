package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// demoUpstream serves the demo's image and artifact mirror on loopback and
// returns the --var flags that point plans/demo.yaml at them, and what
// stops them.
func demoUpstream(t *testing.T, out string) ([]string, func()) {
	t.Helper()
	rs := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	dir := t.TempDir()
	if err := fixture.WriteMirror(dir, fixture.DefaultMirror); err != nil {
		t.Fatal(err)
	}
	ms := httptest.NewServer(http.FileServer(http.Dir(dir)))
	host := strings.TrimPrefix(rs.URL, "http://")
	ref, _ := name.ParseReference(host + "/rootfsctl/demo-node:v1")
	if err := remote.WriteIndex(ref, fixture.Index(map[string]v1.Image{"amd64": fixture.NodeImage("amd64"), "arm64": fixture.NodeImage("arm64")})); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := func() { rs.Close(); ms.Close() }
	t.Cleanup(stop)
	return []string{"--var", "registry=" + host, "--var", "mirror=" + ms.URL, "--var", "resolvConf=" + resolv, "--var", "out=" + out}, stop
}

// TestMirrorThenApplyWithoutUpstream: artifacts lists the demo plan for
// two platforms; mirror stores it in a layout, a second mirror transfers
// nothing and says so; the layout is carried into a registry; with the
// upstream servers stopped, apply --mirror provisions from that registry.
func TestMirrorThenApplyWithoutUpstream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	out := t.TempDir()
	vars, stop := demoUpstream(t, out)
	plan := "../../plans/demo.yaml"

	code, stdout, stderr := cli(t, ctx, append([]string{"artifacts", "-o", "json", "--platform", "linux/amd64", "--platform", "linux/arm64", plan}, vars...)...)
	var listed struct {
		Images    []struct{ Platforms []string }
		Artifacts []struct{ URL, Checksum, MirrorName string }
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &listed) != nil || len(listed.Images) != 1 || len(listed.Images[0].Platforms) != 2 || len(listed.Artifacts) != 14 {
		t.Fatalf("artifacts: exit %d, %d artifacts\n%s%s", code, len(listed.Artifacts), stdout, stderr)
	}

	carry := "oci-layout:" + filepath.Join(t.TempDir(), "carry")
	for round, want := range []string{"0 already there", "nothing was transferred"} {
		code, stdout, stderr = cli(t, ctx, append([]string{"mirror", "--to", carry, plan}, vars...)...)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("mirror round %d: exit %d, want %q\n%s%s", round, code, want, stdout, stderr)
		}
	}
	site := "oci://" + strings.TrimPrefix(httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)))).URL, "http://") + "/site"
	code, stdout, stderr = cli(t, ctx, "mirror", "--from", carry, "--to", site)
	if code != 0 || !strings.Contains(stdout, "0 already there") {
		t.Fatalf("mirror --from: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, _ = cli(t, ctx, append([]string{"artifacts", "-o", "json", "--mirror", site, plan}, vars...)...)
	host := strings.TrimPrefix(site, "oci://")
	if code != 0 || strings.Count(stdout, `"mirrorName": "`+host+"/") != 8 {
		t.Errorf("artifacts --mirror: exit %d, want every item named in %s\n%s", code, host, stdout)
	}

	stop()
	code, stdout, _ = cli(t, ctx, append([]string{"mirror", "--to", "oci-layout:" + filepath.Join(t.TempDir(), "late"), plan}, vars...)...)
	if code != exitFailed || strings.Contains(stdout, " 0 failed") || !strings.Contains(stdout, "failed: ") {
		t.Errorf("mirror with upstream stopped: exit %d, want the failed items counted as failed\n%s", code, stdout)
	}
	code, stdout, stderr = cli(t, ctx, append([]string{"apply", "--mirror", site, plan}, vars...)...)
	if code != 0 {
		t.Fatalf("apply --mirror with upstream stopped: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "machines/demo1/usr/local/bin/kubelet")); err != nil {
		t.Errorf("kubelet was not installed: %v", err)
	}
}

// TestMirrorBadInput: an unknown scheme, a layout that is not one and a
// missing --to are refused with a clear message, changing nothing.
func TestMirrorBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	notLayout := t.TempDir()
	if err := os.WriteFile(filepath.Join(notLayout, "mine.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"mirror", "--to", "https://registry.example/x", "p.yaml"}, exitUsage, `unknown mirror scheme`},
		{[]string{"mirror", "p.yaml"}, exitUsage, "needs --to"},
		{[]string{"mirror", "--to", "oci-layout:/tmp/x"}, exitUsage, "takes a PLAN, or --from"},
		{[]string{"mirror", "--from", "oci-layout:" + notLayout, "--to", "oci-layout:" + t.TempDir()}, exitFailed, "not an OCI image layout"},
		{[]string{"apply", "--mirror", "ftp://x", "p.yaml"}, exitUsage, `unknown mirror scheme`},
		{[]string{"plan", "--mirror-fallback", "p.yaml"}, exitUsage, "--mirror-fallback needs a mirror"},
		{[]string{"mirror", "--to", "oci://127.0.0.1:9/x", "p.yaml"}, exitFailed, "cannot be reached"},
		{[]string{"apply", "--mirror", "oci://user:secret@r.example/x", "p.yaml"}, exitUsage, "holds no credentials"},
	} {
		code, stdout, stderr := cli(t, ctx, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.msg) {
			t.Errorf("%v: exit %d, want %d with %q\n%s%s", tc.args, code, tc.code, tc.msg, stdout, stderr)
		}
	}
	if entries, _ := os.ReadDir(notLayout); len(entries) != 1 {
		t.Errorf("the non-layout now has %d entries", len(entries))
	}
}
