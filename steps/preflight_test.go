package steps_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/steps"
)

// leaks reports what a preflight result must never show: a URL, a path on
// the mirror or registry, the image's repository or tag, credentials.
func leaks(r engine.CheckResult) bool {
	for _, s := range []string{"http", "/kube/", "/cni/", "cri-tools", "/containerd/", "/runc/", "rootfsctl/demo-node", ":v1", "s3cret", "token"} {
		if strings.Contains(r.Message, s) || strings.Contains(r.Target, s) {
			return true
		}
	}
	return false
}

// TestPreflight: every check passes against a working stand, whatever the
// host has; a broken artifact fails its step's check, and ignoring that
// check (by its name, in any case) covers every download of the step.
func TestPreflight(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	opts := standOptions(t)
	p, g := s.planWith(opts, nil)
	hostIndependent(t, p, opts)
	mirrorHost := strings.TrimPrefix(s.mirror, "http://")

	rep, err := engine.Preflight(context.Background(), g, engine.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != engine.OutcomeOK || rep.Summary.Errors != 0 || rep.Summary.Warnings != 0 {
		t.Fatalf("preflight on a working stand:\n%s", table(rep))
	}
	names := map[string]int{}
	for _, c := range rep.Checks {
		names[c.Name]++
		if leaks(c) {
			t.Errorf("result leaks an address, path or reference: %+v", c)
		}
	}
	for n, want := range map[string]int{"oci-image-reachable": 1, "kubernetes-artifacts": 4, "cri-artifacts": 2, "cni-artifacts": 1, "nspawn-machine-provisioning": 5} {
		if names[n] != want {
			t.Errorf("preflight: %d results for %s, want %d\n%s", names[n], n, want, table(rep))
		}
	}
	if _, err := os.Stat(s.machine()); err == nil {
		t.Error("preflight created the machine directory")
	}

	for _, tc := range []struct {
		broken, check, wantMessage string
	}{
		{"/cni/", "cni-artifacts", "cni-plugins 1.5.1 linux/amd64 from " + mirrorHost + ": server answered 404 Not Found"},
		// crictl is a download of download-kube: its check is kube's.
		{"/cri-tools/", "kubernetes-artifacts", "crictl 1.33.0 linux/amd64 from " + mirrorHost + ": server answered 404 Not Found"},
		{"/runc/", "cri-artifacts", "runc 1.1.12 linux/amd64 from " + mirrorHost + ": server answered 404 Not Found"},
	} {
		t.Run(tc.check+tc.broken, func(t *testing.T) {
			s.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.Contains(r.URL.Path, tc.broken) {
					http.NotFound(w, r)
					return true
				}
				return false
			})
			rep, _ := engine.Preflight(context.Background(), g, engine.PreflightOptions{})
			if rep.Status != engine.OutcomeFailed || rep.Summary.Errors != 1 {
				t.Fatalf("preflight with %s missing: %s, %+v\n%s", tc.broken, rep.Status, rep.Summary, table(rep))
			}
			for _, c := range rep.Checks {
				if c.Severity == engine.SeverityError && (c.Name != tc.check || c.Message != tc.wantMessage) {
					t.Errorf("error result %s: %q, want %s: %q", c.Name, c.Message, tc.check, tc.wantMessage)
				}
				if leaks(c) {
					t.Errorf("result leaks an address, path or reference: %+v", c)
				}
			}
			rep, _ = engine.Preflight(context.Background(), g, engine.PreflightOptions{Ignore: []string{strings.ToUpper(tc.check)}})
			if rep.Status != engine.OutcomeOK || rep.Summary.Warnings != 1 {
				t.Errorf("ignoring %s: %s %+v, want ok with one warning\n%s", tc.check, rep.Status, rep.Summary, table(rep))
			}
			rep, _ = engine.Preflight(context.Background(), g, engine.PreflightOptions{Ignore: []string{"all"}, FailOnWarnings: true})
			if rep.Status != engine.OutcomeFailed {
				t.Errorf("fail-on-warnings with an ignored error: %s", rep.Status)
			}
		})
	}
	s.setFault(nil)
}

// checkContext is what a test runs checks under: cancelled by the
// returned function or at the end of the test, and past the deadline when
// one is given.
func checkContext(t *testing.T, deadline time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if deadline > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, deadline)
		t.Cleanup(stop)
	}
	return ctx, cancel
}

// stall answers nothing until the request is given up, and says when a
// request has arrived.
func stall(arrived chan<- struct{}) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
		return true
	}
}

// TestPreflightMessagesNameArtifactAndHost: an artifact check's message
// names the artifact and the host (never the path, query or credentials)
// and says what went wrong in words one can act on: a name that does not
// resolve, a refused connection, a server's answer, the check's deadline
// (from its context, not a timeout of its own), or a cancellation (never a
// "network or protocol error").
func TestPreflightMessagesNameArtifactAndHost(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedHost := closed.Addr().String()
	closed.Close()
	noDNS := &http.Client{Transport: &http.Transport{DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
		// A real lookup would leave loopback; this is what one returns.
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}}
	}}}
	notFound := func(w http.ResponseWriter, r *http.Request) bool { http.NotFound(w, r); return true }

	// MIRROR is the stand's mirror host:port.
	for _, tc := range []struct {
		name     string
		mirror   string
		client   *http.Client
		fault    func(w http.ResponseWriter, r *http.Request) bool
		deadline time.Duration
		cancel   bool
		want     string
	}{
		{name: "name does not resolve", mirror: "http://mirror.example.invalid:8080", client: noDNS,
			want: "kubelet 1.33.1 linux/amd64 from mirror.example.invalid:8080: host name does not resolve"},
		{name: "refused", mirror: "http://" + refusedHost,
			want: "kubelet 1.33.1 linux/amd64 from " + refusedHost + ": connection refused"},
		{name: "404 with credentials in the URL", mirror: "http://user:s3cret@MIRROR", fault: notFound,
			want: "kubelet 1.33.1 linux/amd64 from MIRROR: server answered 404 Not Found"},
		{name: "stalled", mirror: "http://MIRROR", deadline: 300 * time.Millisecond,
			want: "kubelet 1.33.1 linux/amd64 from MIRROR: no answer within 300ms"},
		{name: "cancelled", mirror: "http://MIRROR", cancel: true,
			want: "kubelet 1.33.1 linux/amd64 from MIRROR: cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStand(t)
			opts := standOptions(t)
			if tc.client != nil {
				opts.Fetch = fetch.New("rootfsctl/test", fetch.WithHTTPClient(tc.client), fetch.WithRetries(1, 0))
			}
			at := strings.NewReplacer("MIRROR", strings.TrimPrefix(s.mirror, "http://"))
			p, _ := s.planWith(opts, map[string]string{"mirror": at.Replace(tc.mirror)})
			ctx, cancel := checkContext(t, tc.deadline)
			arrived := make(chan struct{}, 1)
			switch {
			case tc.fault != nil:
				s.setFault(tc.fault)
			case tc.deadline > 0 || tc.cancel:
				s.setFault(stall(arrived))
			}
			if tc.cancel {
				go func() { <-arrived; cancel() }()
			}
			var got string
			for _, r := range runChecks(ctx, t, p, "kube") {
				if r.Target == "kubelet 1.33.1 linux/amd64" {
					got = r.Message
				}
				if leaks(r) {
					t.Errorf("result leaks an address, path or credentials: %+v", r)
				}
			}
			if want := at.Replace(tc.want); got != want {
				t.Errorf("kubelet check: %q, want %q", got, want)
			}
		})
	}
}

// TestImageCheckMessages: the image check names the registry host, never
// the repository or tag, and words timeouts, cancellation and registry
// answers from their types.
func TestImageCheckMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		extra    func(s *stand) map[string]string
		platform string
		stall    bool
		deadline time.Duration
		cancel   bool
		want     string // after "registry <host>: "
	}{
		{name: "resolves", want: "manifest for linux/amd64 resolves"},
		{name: "unknown tag", extra: func(s *stand) map[string]string {
			return map[string]string{"image": s.registry + "/rootfsctl/demo-node:nope"}
		}, want: "registry answered 404 Not Found (MANIFEST_UNKNOWN)"},
		{name: "no such platform", platform: "linux/s390x", want: "image has no manifest for linux/s390x (it has: linux/amd64, linux/arm64)"},
		{name: "stalled", stall: true, deadline: 300 * time.Millisecond, want: "no answer within 300ms"},
		{name: "cancelled", stall: true, cancel: true, want: "cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStand(t)
			var extra map[string]string
			if tc.extra != nil {
				extra = tc.extra(s)
			}
			opts := standOptions(t)
			p, _ := s.planWith(opts, extra)
			if tc.platform != "" {
				replaceStep(t, p, "workspace", opts, func(params any) { params.(*steps.WorkspaceParams).Platform = steps.Platform(tc.platform) })
			}
			ctx, cancel := checkContext(t, tc.deadline)
			arrived := make(chan struct{}, 1)
			if tc.stall {
				s.setRegistryFault(stall(arrived))
			}
			if tc.cancel {
				go func() { <-arrived; cancel() }()
			}
			var got []engine.CheckResult
			for _, r := range runChecks(ctx, t, p, "workspace") {
				if r.Name == "oci-image-reachable" {
					got = append(got, r)
				}
			}
			want := "registry " + s.registry + ": " + tc.want
			if len(got) != 1 || got[0].Message != want {
				t.Fatalf("oci-image-reachable: %+v, want one result %q", got, want)
			}
			if strings.Contains(got[0].Message, "demo-node") || strings.Contains(got[0].Message, "nope") {
				t.Errorf("message names the repository or tag: %q", got[0].Message)
			}
		})
	}
}
