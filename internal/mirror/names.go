package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// Name is where an item lives in a mirror, relative to its prefix: a
// repository and a tag, or a digest when the plan pins one.
type Name struct {
	Repo   string
	Tag    string
	Digest string // "sha256:..."; then Tag is ""
}

// String is repo:tag or repo@digest.
func (n Name) String() string {
	if n.Digest != "" {
		return n.Repo + "@" + n.Digest
	}
	return n.Repo + ":" + n.Tag
}

// maxRel bounds a mirror-relative repository name, so that with a
// registry and prefix it stays within the 255 characters registries take.
const maxRel = 160

// ArtifactName is the name of a downloaded file in a mirror, derived from
// its upstream URL alone (never its credentials): the host (and port) and
// the directories become the repository, the file name the tag, with a
// short hash of the query when there is one (it may select the content).
// The same URL always gives the same name, different URLs different names.
//
//	https://dl.k8s.io/release/v1.33.1/bin/linux/amd64/kubelet
//	-> dl.k8s.io/release/v1.33.1/bin/linux/amd64:kubelet
func ArtifactName(raw string) (Name, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "file" && u.Host == "") {
		return Name{}, fmt.Errorf("cannot name %q in a mirror: not an absolute URL", fetch.Redact(raw))
	}
	host := hostComponent(u.Host)
	if u.Scheme == "file" {
		host = "file"
	}
	dir, file := path.Split(path.Clean("/" + u.Path))
	if u.RawQuery != "" {
		file += "-q" + shortHash(u.RawQuery)
	}
	parts := []string{host}
	for _, seg := range strings.Split(strings.Trim(dir, "/"), "/") {
		if seg != "" {
			parts = append(parts, component(seg))
		}
	}
	return Name{Repo: bounded(strings.Join(parts, "/")), Tag: tag(file)}, nil
}

// ImageName is the name of an image in a mirror: its registry and
// repository, with its tag, or its digest when the reference pins one.
//
//	registry.example/team/rootfs:1.0 -> registry.example/team/rootfs:1.0
func ImageName(ref name.Reference) Name {
	n := Name{Repo: bounded(hostComponent(ref.Context().RegistryStr()) + "/" + ref.Context().RepositoryStr())}
	if d, ok := ref.(name.Digest); ok {
		n.Digest = d.DigestStr()
	} else {
		n.Tag = ref.Identifier()
	}
	return n
}

// LayoutImageName names an image read from an OCI layout on disk (an
// oci:/dir[:tag] reference) by its directory.
func LayoutImageName(dir, tagName string) Name {
	var parts []string
	for _, seg := range strings.Split(strings.Trim(path.Clean(dir), "/"), "/") {
		if seg != "" {
			parts = append(parts, component(seg))
		}
	}
	if tagName == "" {
		tagName = "latest"
	}
	return Name{Repo: bounded("oci-layout/" + strings.Join(parts, "/")), Tag: tag(tagName)}
}

var (
	notRepoChar = regexp.MustCompile(`[^a-z0-9._-]`)
	sepRun      = regexp.MustCompile(`[._-]{2,}`)
	validTag    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	notTagChar  = regexp.MustCompile(`[^A-Za-z0-9_.-]`)
)

// hostComponent names a host[:port] as one path component: the host as
// component makes it, and "_PORT". A host that has an "_" of its own is
// hashed, so that no host can pass for another host's port.
func hostComponent(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	host = strings.ToLower(host)
	c := component(host)
	if c == host && strings.Contains(host, "_") {
		c += "-" + shortHash(host)
	}
	if port != "" {
		c += "_" + component(port)
	}
	return c
}

// component makes s a valid repository path component. One that had to
// change gets a short hash of the original, so that two originals never
// share a component.
func component(s string) string {
	c := notRepoChar.ReplaceAllString(strings.ToLower(s), "-")
	c = sepRun.ReplaceAllStringFunc(c, func(run string) string {
		if run == "__" || strings.Trim(run, "-") == "" {
			return run
		}
		return "-"
	})
	c = strings.Trim(c, "._-")
	if c == s {
		return c
	}
	if c == "" {
		return "x" + shortHash(s)
	}
	return c + "-" + shortHash(s)
}

// tag makes s a valid tag, hashing the original in when it had to change.
func tag(s string) string {
	if validTag.MatchString(s) {
		return s
	}
	t := strings.TrimLeft(notTagChar.ReplaceAllString(s, "-"), ".-")
	if len(t) > 100 {
		t = t[:100]
	}
	if t == "" {
		return "x" + shortHash(s)
	}
	return t + "-" + shortHash(s)
}

// bounded keeps a repository name short enough, hashing the rest in.
func bounded(repo string) string {
	if len(repo) <= maxRel {
		return repo
	}
	cut := strings.TrimRight(repo[:maxRel-14], "/._-")
	return cut + "-" + shortHash(repo)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}
