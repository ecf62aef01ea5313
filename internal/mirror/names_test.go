package mirror

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestArtifactNames(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://dl.k8s.io/release/v1.33.1/bin/linux/amd64/kubelet":                                             "dl.k8s.io/release/v1.33.1/bin/linux/amd64:kubelet",
		"https://github.com/containerd/containerd/releases/download/v1.7.0/containerd-1.7.0-linux-amd64.tar.gz": "github.com/containerd/containerd/releases/download/v1.7.0:containerd-1.7.0-linux-amd64.tar.gz",
		"http://127.0.0.1:8080/kube/v1.33.1/bin/linux/amd64/kubectl":                                            "127.0.0.1_8080/kube/v1.33.1/bin/linux/amd64:kubectl",
		"http://127.0.0.1:8080/get?bin=kubelet":                                                                 "127.0.0.1_8080:get-q" + shortHash("bin=kubelet"),
		"https://user:pw@Example.ORG/a/b":                                                                       "example.org/a:b",
	} {
		n, err := ArtifactName(raw)
		if err != nil || n.String() != want {
			t.Errorf("ArtifactName(%q) = %q, %v; want %q", raw, n, err, want)
		}
	}
	for _, bad := range []string{"relative/path", "://x", "https:///nohost"} {
		if n, err := ArtifactName(bad); err == nil {
			t.Errorf("ArtifactName(%q) = %q, want an error", bad, n)
		}
	}
}

// TestNamesAreValidAndDistinct is a property test over random URLs: every
// name is one a registry takes (checked by go-containerregistry's strict
// parser), the same URL always gives the same name, and URLs that differ
// in host, directories or file name never share one.
func TestNamesAreValidAndDistinct(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 11))
	alphabet := []rune("abcXYZ019._-~+@ %:!é")
	seg := func() string {
		var b strings.Builder
		for range r.IntN(12) + 1 {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	seen := map[string]string{}
	for i := range 4000 {
		host := []string{"h0.example", "h1.example", "h0.example-9", "h0.example_9", "h-0.example"}[r.IntN(5)]
		if r.IntN(4) == 0 {
			host += fmt.Sprintf(":%d", 9+r.IntN(2))
		}
		path := ""
		for range r.IntN(30) + 1 {
			path += "/" + seg()
		}
		raw := "https://" + host + strings.ReplaceAll(strings.ReplaceAll(path, "%", "%25"), " ", "%20")
		if r.IntN(3) == 0 {
			raw += fmt.Sprintf("?bin=%d", r.IntN(3))
		}
		n, err := ArtifactName(raw)
		if err != nil {
			t.Fatalf("case %d: ArtifactName(%q): %v", i, raw, err)
		}
		if _, err := name.NewTag("registry.example:5000/some/prefix/"+n.String(), name.StrictValidation); err != nil {
			t.Fatalf("case %d: %q gives %q, which a registry refuses: %v", i, raw, n, err)
		}
		again, _ := ArtifactName(raw)
		if again != n {
			t.Fatalf("case %d: %q named %q, then %q", i, raw, n, again)
		}
		key := canonical(raw)
		if prev, ok := seen[n.String()]; ok && prev != key {
			t.Fatalf("case %d: %q and %q share the name %q", i, prev, key, n)
		}
		seen[n.String()] = key
	}
}

// canonical is what a name stands for: the host and the cleaned path.
func canonical(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	return strings.ToLower(u.Host) + path.Clean("/"+u.Path) + "?" + u.RawQuery
}

func TestImageNames(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"registry.example/team/rootfs:1.0":               "registry.example/team/rootfs:1.0",
		"127.0.0.1:5000/kube/rootfs:v1":                  "127.0.0.1_5000/kube/rootfs:v1",
		"debian":                                         "index.docker.io/library/debian:latest",
		"r.example/a@sha256:" + strings.Repeat("ab", 32): "r.example/a@sha256:" + strings.Repeat("ab", 32),
	} {
		ref, err := name.ParseReference(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := ImageName(ref).String(); got != want {
			t.Errorf("ImageName(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestParseDest(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"oci://127.0.0.1:5000/site/mirror": "oci://127.0.0.1:5000/site/mirror",
		"oci://registry.example":           "oci://registry.example",
		"oci://registry.example/":          "oci://registry.example",
		"oci-layout:/tmp/carry":            "oci-layout:/tmp/carry",
	} {
		d, err := ParseDest(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDest(%q) = %q, %v; want %q", in, d, err, want)
		}
	}
	for in, msg := range map[string]string{
		"https://registry.example/x":      `unknown mirror scheme "https"`,
		"/tmp/dir":                        "unknown mirror scheme",
		"oci://":                          "no registry",
		"oci://Registry Host/x":           "not a registry",
		"oci://r.example/UPPER":           "not a repository prefix",
		"oci-layout:":                     "no directory",
		"oci://admin:hunter2@r.example/x": "holds no credentials",
		"oci://r.example/x?token=hunter2": "holds no credentials",
	} {
		if _, err := ParseDest(in); err == nil || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseDest(%q): %v, want an error containing %q and no secret", in, err, msg)
		}
	}
}
