package artifact_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/artifact"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// installer downloads kubelet and crictl (check "kube") and runc (check
// "cri") from base; kubelet is pinned and already in the cache.
func installer(t *testing.T, base string) *artifact.Installer {
	t.Helper()
	c := cache.New(t.TempDir())
	e, err := c.Create()
	if err != nil {
		t.Fatal(err)
	}
	e.Write([]byte("kubelet"))
	pinned := e.Digest()
	if err := e.Commit(pinned); err != nil {
		t.Fatal(err)
	}
	job := func(name, check, pin string) artifact.Job {
		return artifact.Job{Check: check, Dest: "usr/local/bin/" + name,
			Artifact: artifact.Artifact{Name: name + " 1.0", URL: base + "/" + name, SumURL: base + "/" + name + ".sha256", SumFile: name, Pinned: pin}}
	}
	return artifact.New(artifact.Spec{Step: "s", MachineDir: t.TempDir(), InstallDir: "usr/local/bin", Fetch: fetch.New("t"), Cache: c,
		Jobs: []artifact.Job{job("kubelet", "kube", pinned), job("runc", "cri", ""), job("crictl", "kube", "")}})
}

func run(ctx context.Context, in *artifact.Installer) map[string]engine.CheckResult {
	out := map[string]engine.CheckResult{}
	for _, c := range in.Preflight() {
		for _, r := range c.Run(ctx) {
			out[r.Name+" "+r.Target] = r
		}
	}
	return out
}

// TestPreflightProbesEachArtifactOnce: the artifacts are grouped into their
// steps' checks in job order; a cached one is not asked for, a missing one
// fails with the server's answer and its host, never its path; with the
// budget spent or not, and when the check's time is up before an artifact
// was probed, every artifact has its result.
func TestPreflightProbesEachArtifactOnce(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/runc") {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("x"))
	}))
	defer srv.Close()
	in := installer(t, srv.URL)
	host := strings.TrimPrefix(srv.URL, "http://")
	var names []string
	for _, c := range in.Preflight() {
		names = append(names, c.Name())
	}
	if strings.Join(names, ",") != "kube,cri" {
		t.Errorf("Preflight(): checks %v, want kube,cri", names)
	}
	want := map[string]string{
		"kube kubelet 1.0": "kubelet 1.0: in the cache; no download needed",
		"kube crictl 1.0":  "crictl 1.0 from " + host + ": reachable",
		"cri runc 1.0":     "runc 1.0 from " + host + ": server answered 404 Not Found",
	}
	for _, ctx := range []context.Context{context.Background(), budget.With(context.Background(), budget.New(4))} {
		got := run(ctx, in)
		for k, msg := range want {
			if got[k].Message != msg {
				t.Errorf("%s: %q, want %q", k, got[k].Message, msg)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%d results, want %d: %v", len(got), len(want), got)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for k, r := range run(ctx, in) {
		if r.Severity != engine.SeverityError || !strings.HasSuffix(r.Message, ": cancelled") {
			t.Errorf("cancelled check: %s: %s %q, want an error saying cancelled", k, r.Severity, r.Message)
		}
	}
}
