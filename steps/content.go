package steps

import (
	"context"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/artifact"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/internal/oci"
)

// Content is everything a plan fetches, without fetching it: for review
// (air-gap approvals), and the list the mirror command stores.
type Content struct {
	Images    []ImageItem    `json:"images"`
	Artifacts []ArtifactItem `json:"artifacts"`
}

// ImageItem is an image and the platforms the plan takes from it.
type ImageItem struct {
	Step      string   `json:"step"`
	Reference string   `json:"reference"`
	Platforms []string `json:"platforms"`
	Pinned    string   `json:"pinnedDigest,omitempty"`
	Mirror    string   `json:"mirrorName"` // its name in a mirror

	w         *workspace
	platforms []v1.Platform
}

// ArtifactItem is one downloaded file.
type ArtifactItem struct {
	Step     string `json:"step"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Platform string `json:"platform"`
	URL      string `json:"url"`      // without credentials or query
	Checksum string `json:"checksum"` // where its SHA-256 comes from: "pinned" or the published document
	Pinned   string `json:"pinnedSha256,omitempty"`
	Mirror   string `json:"mirrorName"`

	in *artifact.Installer
	a  artifact.Artifact
}

// In names every item where m holds it (the full reference), instead of
// its name relative to a mirror.
func (c *Content) In(m *mirror.Mirror) {
	for i := range c.Images {
		c.Images[i].Mirror = m.Where(imageName(c.Images[i].w.upstream))
	}
	for i := range c.Artifacts {
		if n, err := mirror.ArtifactName(c.Artifacts[i].a.URL); err == nil {
			c.Artifacts[i].Mirror = m.Where(n)
		}
	}
}

// Inventory lists what the plans fetch: one plan loaded once per platform
// asked for. An image taken for several platforms is listed once with
// them all; an artifact (the same URL) once.
func Inventory(plans ...*engine.Plan) (Content, error) {
	var c Content
	seen := map[string]bool{}
	named := map[string]string{} // mirror name -> URL
	for _, p := range plans {
		for _, s := range p.Steps {
			switch impl := s.Impl.(type) {
			case *workspace:
				c.addImage(s.ID, impl)
			case *artifact.Installer:
				for _, a := range impl.Artifacts() {
					if seen[a.URL] {
						continue
					}
					seen[a.URL] = true
					n, err := mirror.ArtifactName(a.URL)
					if err != nil {
						return Content{}, fmt.Errorf("step %s: %w", s.ID, err)
					}
					if other, ok := named[n.String()]; ok {
						return Content{}, fmt.Errorf("step %s: %s and %s would share the mirror name %s", s.ID, fetch.Redact(other), fetch.Redact(a.URL), n)
					}
					named[n.String()] = a.URL
					c.Artifacts = append(c.Artifacts, ArtifactItem{Step: s.ID, Name: a.What, Version: a.Version, Platform: a.Platform,
						URL: fetch.Redact(a.URL), Checksum: a.SumFrom(), Pinned: a.Pinned, Mirror: n.String(), in: impl, a: a})
				}
			}
		}
	}
	return c, nil
}

func (c *Content) addImage(step string, w *workspace) {
	ref := string(w.p.Image)
	plat := oci.PlatformString(w.platform)
	i := slices.IndexFunc(c.Images, func(it ImageItem) bool { return it.Reference == ref })
	if i < 0 {
		pinned, _ := w.upstream.PinnedDigest()
		c.Images = append(c.Images, ImageItem{Step: step, Reference: ref, Pinned: pinned, Mirror: imageName(w.upstream).String(), w: w})
		i = len(c.Images) - 1
	}
	if !slices.Contains(c.Images[i].Platforms, plat) {
		c.Images[i].Platforms = append(c.Images[i].Platforms, plat)
		c.Images[i].platforms = append(c.Images[i].platforms, w.platform)
	}
}

// MirrorResult is what a mirror run stored.
type MirrorResult struct {
	Item   string `json:"item"` // the image reference or the artifact's name and version
	Name   string `json:"name"` // in the mirror
	Digest string `json:"digest"`
	Copied bool   `json:"copied"` // false: the mirror held it already
	Error  string `json:"error,omitempty"`
}

// Mirror stores everything c lists in m: images by digest with their
// platforms, artifacts downloaded and verified upstream (or from the
// cache) first. Up to parallelism items at once; every item is tried, and
// the first error is returned with all results.
func Mirror(ctx context.Context, c Content, m *mirror.Mirror, parallelism int) ([]MirrorResult, error) {
	b := budget.New(parallelism)
	ctx = budget.With(ctx, b)
	out := make([]MirrorResult, len(c.Images)+len(c.Artifacts))
	errs := b.Run(ctx, len(out), func(ctx context.Context, i int) error {
		var st mirror.Stored
		var err error
		if i < len(c.Images) {
			it := c.Images[i]
			out[i].Item, out[i].Name = it.Reference, it.Mirror
			st, err = it.w.mirrorTo(ctx, m, it.platforms)
		} else {
			it := c.Artifacts[i-len(c.Images)]
			out[i].Item, out[i].Name = it.Name+" "+it.Version+" "+it.Platform, it.Mirror
			st, err = it.in.MirrorOne(ctx, m, it.a)
		}
		out[i].Digest, out[i].Copied = st.Digest, st.Copied
		if err != nil {
			out[i].Error = err.Error()
		}
		return err
	})
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, ctx.Err()
}
