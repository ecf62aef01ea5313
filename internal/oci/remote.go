package oci

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Try attempts a registry request under the context's retry policy, or
// the registry's, as long as its failure may be transient.
func (r *Registry) Try(ctx context.Context, fn func(ctx context.Context) error) error {
	return r.try(ctx, fn)
}

// RemoteOptions are the go-containerregistry options every request to a
// registry is made with (credentials, transport, one attempt per call:
// Try retries).
func (r *Registry) RemoteOptions(ctx context.Context) []remote.Option { return r.options(ctx) }

// OpenBlob opens a blob of repo by digest, with the idle timeout layers
// have. go-containerregistry checks nothing of what it reads: the caller
// verifies the digest.
func (r *Registry) OpenBlob(ctx context.Context, repo name.Repository, digest string) (io.ReadCloser, error) {
	l, err := remote.Layer(repo.Digest(digest), r.options(ctx)...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	return newIdleReader(rc, r.IdleTimeout), nil
}

// IsNotFound reports whether err is a registry's answer that a manifest,
// repository or blob does not exist.
func IsNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// LayoutRef is the reference of the image an OCI layout names name (its
// org.opencontainers.image.ref.name annotation, which may hold a
// repository as well as a tag).
func LayoutRef(dir, name string) Ref { return Ref{layoutPath: dir, layoutTag: name} }

// Registry reference of r, when it is one.
func (r Ref) Registry() (name.Reference, bool) { return r.ref, r.ref != nil }

// Layout is the directory and name of r, when it is an OCI layout's.
func (r Ref) Layout() (dir, tag string, ok bool) { return r.layoutPath, r.layoutTag, r.layoutPath != "" }

// FromReference wraps a registry reference.
func FromReference(ref name.Reference) Ref { return Ref{ref: ref} }

// CheckLayout refuses a directory that is not a readable OCI layout, or
// one whose index.json is oversized or whose blobs are not all regular
// files.
func CheckLayout(dir string) error { return checkLayout(dir) }
