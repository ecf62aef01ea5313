package mirror

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// Dest is where a mirror lives: a registry and a repository prefix in it
// (oci://REGISTRY/PREFIX), or an OCI image layout on disk
// (oci-layout:DIR).
type Dest struct {
	Registry string // host[:port]; "" for a layout
	Prefix   string // repository path prefix inside the registry; may be ""
	Layout   string // absolute directory of an OCI image layout
}

// The two schemes a Dest is written in.
const (
	registryScheme = "oci://"
	layoutScheme   = "oci-layout:"
)

// ParseDest parses oci://REGISTRY[/PREFIX] or oci-layout:DIR (a relative
// DIR is taken from the working directory).
func ParseDest(s string) (Dest, error) {
	if strings.HasPrefix(s, registryScheme) && strings.ContainsAny(s, "@?#") {
		return Dest{}, fmt.Errorf("%q: a mirror address holds no credentials, query or fragment (credentials come from the Docker config)", fetch.Redact(strings.Replace(s, registryScheme, "https://", 1)))
	}
	switch {
	case strings.HasPrefix(s, registryScheme):
		rest := strings.TrimSuffix(strings.TrimPrefix(s, registryScheme), "/")
		host, prefix, _ := strings.Cut(rest, "/")
		if host == "" {
			return Dest{}, fmt.Errorf("%q: no registry after oci://", s)
		}
		reg, err := name.NewRegistry(host, name.StrictValidation)
		if err != nil {
			return Dest{}, fmt.Errorf("%q: %q is not a registry host[:port]", s, host)
		}
		if prefix != "" {
			if _, err := name.NewRepository(host+"/"+prefix, name.StrictValidation); err != nil {
				return Dest{}, fmt.Errorf("%q: %q is not a repository prefix (lower-case letters, digits, '.', '_', '-', '/')", s, prefix)
			}
		}
		return Dest{Registry: reg.RegistryStr(), Prefix: prefix}, nil
	case strings.HasPrefix(s, layoutScheme):
		dir := strings.TrimPrefix(s, layoutScheme)
		if dir == "" {
			return Dest{}, fmt.Errorf("%q: no directory after oci-layout:", s)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return Dest{}, fmt.Errorf("%q: %w", s, err)
		}
		return Dest{Layout: abs}, nil
	}
	scheme, _, ok := strings.Cut(s, ":")
	if !ok {
		scheme = s
	}
	return Dest{}, fmt.Errorf("%q: unknown mirror scheme %q; use oci://REGISTRY/PREFIX or oci-layout:DIR", s, scheme)
}

// String is the Dest as it is written.
func (d Dest) String() string {
	if d.Layout != "" {
		return layoutScheme + d.Layout
	}
	if d.Prefix == "" {
		return registryScheme + d.Registry
	}
	return registryScheme + d.Registry + "/" + d.Prefix
}

// IsLayout reports whether d is an OCI image layout.
func (d Dest) IsLayout() bool { return d.Layout != "" }

// repo is the full repository name of a mirror-relative one.
func (d Dest) repo(rel string) string {
	if d.Prefix == "" {
		return d.Registry + "/" + rel
	}
	return d.Registry + "/" + d.Prefix + "/" + rel
}
