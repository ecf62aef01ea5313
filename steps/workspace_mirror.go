package steps

import (
	"context"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/internal/oci"
)

// The workspace's image in a mirror: where an apply resolves it from, and
// how the mirror command stores it.

// imageName is the image's name in a mirror, from the plan's reference.
func imageName(ref oci.Ref) mirror.Name {
	if r, ok := ref.Registry(); ok {
		return mirror.ImageName(r)
	}
	dir, tag, _ := ref.Layout()
	return mirror.LayoutImageName(dir, tag)
}

// resolve resolves the plan's image for the platform: from the mirror
// when there is one, and from upstream only when the mirror lacks it and
// fallback is allowed.
func (w *workspace) resolve(ctx context.Context) (*oci.Image, error) {
	img, err := w.reg.Resolve(ctx, w.ref, w.platform)
	if err != nil && w.mirror != nil && w.fallback && oci.IsNotFound(err) {
		return w.reg.Resolve(ctx, w.upstream, w.platform)
	}
	return img, err
}

// notMirrored says that the mirror lacks the image.
func (w *workspace) notMirrored() error {
	return fmt.Errorf("image %w", w.mirror.Missing(imageName(w.upstream)))
}

// mirrorTo stores the plan's image in m, manifests by digest. An index
// keeps only the platforms asked for, unless the plan pins its digest:
// then it is stored whole, so that the pin resolves in the mirror too.
// Either way every platform's manifest keeps its digest, which is what a
// machine records.
func (w *workspace) mirrorTo(ctx context.Context, m *mirror.Mirror, platforms []v1.Platform) (mirror.Stored, error) {
	got, err := w.reg.Get(ctx, w.upstream)
	if err != nil {
		return mirror.Stored{}, err
	}
	idx, isIndex := got.(v1.ImageIndex)
	if _, pinned := w.upstream.PinnedDigest(); isIndex && !pinned {
		if got, err = onlyPlatforms(idx, platforms); err != nil {
			return mirror.Stored{}, fmt.Errorf("image %s: %w", imageName(w.upstream), err)
		}
	}
	return m.Put(ctx, imageName(w.upstream), got)
}

// onlyPlatforms is idx without the manifests of other platforms.
func onlyPlatforms(idx v1.ImageIndex, platforms []v1.Platform) (v1.ImageIndex, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	wanted := func(d v1.Descriptor) bool {
		for _, p := range platforms {
			if d.Platform != nil && d.Platform.Satisfies(p) {
				return true
			}
		}
		return false
	}
	for _, p := range platforms {
		if !slices.ContainsFunc(im.Manifests, func(d v1.Descriptor) bool { return d.Platform != nil && d.Platform.Satisfies(p) }) {
			return nil, fmt.Errorf("the index has no manifest for %s", oci.PlatformString(p))
		}
	}
	return mutate.RemoveManifests(idx, func(d v1.Descriptor) bool { return !wanted(d) }), nil
}
