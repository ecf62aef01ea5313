package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// imageRef is a parsed image reference: a registry reference, or an OCI
// image layout on disk ("oci:/path" or "oci:/path:tag").
type imageRef struct {
	raw        string
	ref        name.Reference // registry images
	layoutPath string         // oci: images
	layoutTag  string
}

func parseImageRef(raw string, insecure bool) (imageRef, error) {
	if p, ok := strings.CutPrefix(raw, "oci:"); ok {
		tag := ""
		if i := strings.LastIndex(p, ":"); i > strings.LastIndex(p, "/") {
			p, tag = p[:i], p[i+1:]
		}
		if !strings.HasPrefix(p, "/") {
			return imageRef{}, fmt.Errorf("oci: layout path must be absolute, got %q", p)
		}
		return imageRef{raw: raw, layoutPath: p, layoutTag: tag}, nil
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(raw, opts...)
	if err != nil {
		return imageRef{}, fmt.Errorf("invalid image reference: %v", err)
	}
	return imageRef{raw: raw, ref: ref}, nil
}

// isDigest reports whether the reference pins a digest (repo@sha256:...).
func (r imageRef) isDigest() bool {
	_, ok := r.ref.(name.Digest)
	return ok
}

// resolved is the one image selected for the platform.
type resolved struct {
	image    v1.Image
	digest   string // of the platform's image manifest
	platform string
}

// resolve fetches the manifest (or index, then the platform's manifest)
// and nothing else: layers are read later, while unpacking.
func (w *workspace) resolve(ctx context.Context) (*resolved, error) {
	ir := w.ref
	want := w.platform
	if ir.layoutPath != "" {
		return resolveLayout(ir, want)
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(w.opts.Keychain),
		remote.WithTransport(w.opts.Fetch.Transport()),
		remote.WithUserAgent(w.opts.Fetch.UserAgent()),
	}
	desc, err := remote.Get(ir.ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("resolve image %s: %w", ir.ref.Context().Name(), err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("read image index: %w", err)
		}
		return pickFromIndex(idx, want)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("read image manifest: %w", err)
	}
	return checkSingle(img, want)
}

func resolveLayout(ir imageRef, want v1.Platform) (*resolved, error) {
	if err := checkLayout(ir.layoutPath); err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", ir.layoutPath, err)
	}
	idx, err := layout.ImageIndexFromPath(ir.layoutPath)
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", ir.layoutPath, err)
	}
	if ir.layoutTag == "" {
		return pickFromIndex(idx, want)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read OCI layout index: %w", err)
	}
	for _, d := range im.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] != ir.layoutTag {
			continue
		}
		if d.MediaType.IsIndex() {
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("read OCI layout index %s: %w", d.Digest, err)
			}
			return pickFromIndex(sub, want)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("read OCI layout image %s: %w", d.Digest, err)
		}
		return checkSingle(img, want)
	}
	return nil, fmt.Errorf("OCI layout %s has no image tagged %q", ir.layoutPath, ir.layoutTag)
}

// pickFromIndex selects the platform's manifest; only it is then fetched.
func pickFromIndex(idx v1.ImageIndex, want v1.Platform) (*resolved, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	var have []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			continue
		}
		have = append(have, platformString(*d.Platform))
		if !d.Platform.Satisfies(want) {
			continue
		}
		if d.MediaType.IsIndex() {
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("read nested index: %w", err)
			}
			return pickFromIndex(sub, want)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("read image manifest for %s: %w", platformString(want), err)
		}
		return &resolved{image: img, digest: d.Digest.String(), platform: platformString(*d.Platform)}, nil
	}
	if len(im.Manifests) == 1 && im.Manifests[0].Platform == nil && im.Manifests[0].MediaType.IsImage() {
		img, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			return nil, fmt.Errorf("read image manifest: %w", err)
		}
		return checkSingle(img, want)
	}
	return nil, &platformError{want: platformString(want), have: have}
}

// checkSingle accepts a single manifest whose config names no platform or
// the wanted one.
func checkSingle(img v1.Image, want v1.Platform) (*resolved, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if got.Architecture != "" && !got.Satisfies(want) {
		return nil, &platformError{want: platformString(want), have: []string{platformString(got)}}
	}
	return &resolved{image: img, digest: d.String(), platform: platformString(want)}, nil
}

// platformError says the image has no manifest for the wanted platform. It
// names platforms only, so a preflight message may quote it.
type platformError struct {
	want string
	have []string // the platforms the image has
}

func (e *platformError) Error() string {
	return fmt.Sprintf("image has no manifest for %s (it has: %s)", e.want, strings.Join(e.have, ", "))
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// maxLayoutIndex bounds a layout's index.json, which go-containerregistry
// reads whole.
const maxLayoutIndex = 4 << 20

// checkLayout refuses a layout whose index.json is large or not a regular
// file, or whose blobs include anything but regular files: a fifo there
// would block the reader that go-containerregistry opens for ever.
func checkLayout(dir string) error {
	fi, err := os.Lstat(filepath.Join(dir, "index.json"))
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("index.json is not a regular file")
	case fi.Size() > maxLayoutIndex:
		return fmt.Errorf("index.json is larger than %d bytes", maxLayoutIndex)
	}
	algs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	for _, alg := range algs {
		entries, err := os.ReadDir(filepath.Join(dir, "blobs", alg.Name()))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				return fmt.Errorf("blobs/%s/%s is not a regular file", alg.Name(), e.Name())
			}
		}
	}
	return nil
}
