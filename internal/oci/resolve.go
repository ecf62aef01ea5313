package oci

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// Registry is how registries are reached.
type Registry struct {
	Keychain  authn.Keychain
	Transport http.RoundTripper // shared with artifact downloads: proxies and timeouts
	UserAgent string
	// Policy is how a request is attempted where the context carries no
	// retry policy.
	Policy retry.Policy
	// IdleTimeout gives up on a blob that sends nothing for this long.
	IdleTimeout time.Duration
}

// Image is the one image selected for the platform.
type Image struct {
	image    v1.Image
	reg      *Registry
	blobs    *blobGetter // nil for an OCI layout
	Digest   string      // of the platform's image manifest
	Platform string
}

// Resolve fetches the manifest (or index, then the platform's manifest)
// and nothing else: layers are read later, while unpacking. A registry is
// asked again, under the retry policy, when its answer may change.
func (r *Registry) Resolve(ctx context.Context, ref Ref, want v1.Platform) (*Image, error) {
	var img *Image
	var err error
	if ref.layoutPath != "" {
		img, err = resolveLayout(ref, want)
	} else {
		err = r.try(ctx, func(ctx context.Context) (err error) {
			img, err = r.resolveRemote(ctx, ref.ref, want)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	img.reg = r
	if ref.ref != nil {
		img.blobs = &blobGetter{repo: ref.ref.Context(), reg: r}
	}
	return img, nil
}

// try attempts a registry request under the context's retry policy, or
// the registry's, as long as the failure may be transient.
func (r *Registry) try(ctx context.Context, fn func(ctx context.Context) error) error {
	_, err := retry.Do(ctx, retry.PolicyFrom(ctx, r.Policy), retry.Hooks{Retryable: transient}, func(ctx context.Context, _ int) error {
		return fn(ctx)
	})
	return err
}

// options are go-containerregistry's remote options. Its retrying
// transport is held to one attempt: the requests are retried here, under
// the policy the whole run shares, and ggcr's own waits would not end
// when the context does.
func (r *Registry) options(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.Keychain),
		remote.WithTransport(r.Transport),
		remote.WithUserAgent(r.UserAgent),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
}

func (r *Registry) resolveRemote(ctx context.Context, ref name.Reference, want v1.Platform) (*Image, error) {
	desc, err := remote.Get(ref, r.options(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("resolve image %s: %w", ref.Context().Name(), err)
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

func resolveLayout(ir Ref, want v1.Platform) (*Image, error) {
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
	return nil, fmt.Errorf("OCI layout %s has no image tagged %q: %w", ir.layoutPath, ir.layoutTag, errNoImage)
}

// pickFromIndex selects the platform's manifest; only it is then fetched.
func pickFromIndex(idx v1.ImageIndex, want v1.Platform) (*Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	var have []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			continue
		}
		have = append(have, PlatformString(*d.Platform))
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
			return nil, fmt.Errorf("read image manifest for %s: %w", PlatformString(want), err)
		}
		return &Image{image: img, Digest: d.Digest.String(), Platform: PlatformString(*d.Platform)}, nil
	}
	if len(im.Manifests) == 1 && im.Manifests[0].Platform == nil && im.Manifests[0].MediaType.IsImage() {
		img, err := idx.Image(im.Manifests[0].Digest)
		if err != nil {
			return nil, fmt.Errorf("read image manifest: %w", err)
		}
		return checkSingle(img, want)
	}
	return nil, &platformError{want: PlatformString(want), have: have}
}

// checkSingle accepts a single manifest whose config names no platform or
// the wanted one.
func checkSingle(img v1.Image, want v1.Platform) (*Image, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	// The config is read whole: refuse one the manifest says is huge
	// before asking for it (the read is held to the size it says).
	if m, err := img.Manifest(); err != nil {
		return nil, fmt.Errorf("read image manifest: %w", err)
	} else if m.Config.Size > maxConfig {
		return nil, fmt.Errorf("image config is larger than %d MiB (%d bytes)", maxConfig>>20, m.Config.Size)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if got.Architecture != "" && !got.Satisfies(want) {
		return nil, &platformError{want: PlatformString(want), have: []string{PlatformString(got)}}
	}
	return &Image{image: img, Digest: d.String(), Platform: PlatformString(want)}, nil
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

// PlatformString is os/arch[/variant].
func PlatformString(p v1.Platform) string {
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

// Satisfies reports whether a recorded platform is want: the recorded one
// is the index entry's, which may name a variant (linux/arm64/v8) the plan
// does not ask for (linux/arm64); it is the plan's platform when it would
// have been chosen for it.
func Satisfies(recorded string, want v1.Platform) bool {
	got, err := v1.ParsePlatform(recorded)
	return err == nil && got.Satisfies(want)
}
