package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/rootfsctl/rootfsctl/internal/fetch"

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

// errNoImage: an OCI layout names no image so.
var errNoImage = errors.New("no such image")

// IsNotFound reports whether err says that an image, repository or blob
// does not exist: a registry's 404, or a layout without that name.
func IsNotFound(err error) bool {
	var te *transport.Error
	return errors.Is(err, errNoImage) || (errors.As(err, &te) && te.StatusCode == http.StatusNotFound)
}

// Manifest is what a reference names: a v1.ImageIndex or a v1.Image.
type Manifest interface {
	Digest() (v1.Hash, error)
}

// Get fetches what ref names, manifests only (blobs are read when the
// result is written somewhere): an index with all its platforms, or an
// image.
func (r *Registry) Get(ctx context.Context, ref Ref) (Manifest, error) {
	if ref.layoutPath != "" {
		return getLayout(ref)
	}
	var m Manifest
	err := r.try(ctx, func(ctx context.Context) error {
		desc, err := remote.Get(ref.ref, r.options(ctx)...)
		if err != nil {
			return err
		}
		if desc.MediaType.IsIndex() {
			m, err = desc.ImageIndex()
		} else {
			m, err = desc.Image()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get image %s: %w", ref.ref.Context().Name(), err)
	}
	return m, nil
}

func getLayout(ref Ref) (Manifest, error) {
	if err := checkLayout(ref.layoutPath); err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", ref.layoutPath, err)
	}
	idx, err := layout.ImageIndexFromPath(ref.layoutPath)
	if err != nil || ref.layoutTag == "" {
		return idx, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] != ref.layoutTag {
			continue
		}
		if d.MediaType.IsIndex() {
			return idx.ImageIndex(d.Digest)
		}
		return idx.Image(d.Digest)
	}
	return nil, fmt.Errorf("OCI layout %s has no image tagged %q: %w", ref.layoutPath, ref.layoutTag, errNoImage)
}

// LayoutRef is the reference of the image an OCI layout names name (its
// org.opencontainers.image.ref.name annotation, which may hold a
// repository as well as a tag).
func LayoutRef(dir, name string) Ref { return Ref{layoutPath: dir, layoutTag: name} }

// Registry reference of r, when it is one.
func (r Ref) Registry() (name.Reference, bool) { return r.ref, r.ref != nil }

// Layout is the directory and name of r, when it is an OCI layout's.
func (r Ref) Layout() (dir, tag string, ok bool) {
	return r.layoutPath, r.layoutTag, r.layoutPath != ""
}

// FromReference wraps a registry reference.
func FromReference(ref name.Reference) Ref { return Ref{ref: ref} }

// CheckLayout refuses a directory that is not a readable OCI layout, or
// one whose index.json is oversized or whose blobs are not all regular
// files.
func CheckLayout(dir string) error { return checkLayout(dir) }

// NewRegistry reaches registries as the download client f reaches
// servers (its transport, user agent, retry policy and idle timeout),
// with the credentials of k.
func NewRegistry(k authn.Keychain, f *fetch.Client) *Registry {
	return &Registry{Keychain: k, Transport: f.Transport(), UserAgent: f.UserAgent(), Policy: f.Policy(), IdleTimeout: f.IdleTimeout()}
}
