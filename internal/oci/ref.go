// Package oci resolves image references (in a registry, or an OCI image
// layout on disk) to the one image for a platform, fetching manifests
// only, and hands that image's layers in order to an unpacker: from the
// cache when they are there, from the registry otherwise (written to the
// cache as they are read), fetching later layers while earlier ones are
// unpacked.
//
// Registry requests are attempted under internal/retry, with the policy
// the context carries (a plan's step retry policy) or the fetch client's;
// go-containerregistry's own retrying transport is switched off, so that
// attempts never multiply. It writes nothing but cache entries, knows
// nothing of machines, and starts no goroutine outside the budget in its
// context (internal/budget).
package oci

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Ref is a parsed image reference: a registry reference, or an OCI image
// layout on disk ("oci:/path" or "oci:/path:tag").
type Ref struct {
	ref        name.Reference // registry images
	layoutPath string         // oci: images
	layoutTag  string
}

// ParseRef parses raw; insecure allows a plain-HTTP registry.
func ParseRef(raw string, insecure bool) (Ref, error) {
	if p, ok := strings.CutPrefix(raw, "oci:"); ok {
		tag := ""
		if i := strings.LastIndex(p, ":"); i > strings.LastIndex(p, "/") {
			p, tag = p[:i], p[i+1:]
		}
		if !strings.HasPrefix(p, "/") {
			return Ref{}, fmt.Errorf("oci: layout path must be absolute, got %q", p)
		}
		return Ref{layoutPath: p, layoutTag: tag}, nil
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(raw, opts...)
	if err != nil {
		return Ref{}, fmt.Errorf("invalid image reference: %v", err)
	}
	return Ref{ref: ref}, nil
}

// PinnedDigest is the digest the reference pins (repo@sha256:...), if it
// pins one.
func (r Ref) PinnedDigest() (string, bool) {
	d, ok := r.ref.(name.Digest)
	if !ok {
		return "", false
	}
	return d.Identifier(), true
}

// Where names where the image comes from, for messages: the registry
// host, never the repository or tag, or "OCI layout".
func (r Ref) Where() string {
	if r.layoutPath != "" {
		return "OCI layout"
	}
	return "registry " + r.ref.Context().RegistryStr()
}

// Short abbreviates a digest for messages.
func Short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
