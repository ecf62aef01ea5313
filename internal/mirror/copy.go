package mirror

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/internal/budget"
)

// Copy stores everything the layout from holds under a name (a carried
// mirror) in to, under the same names: up to parallelism items at once,
// each skipped when to holds it already. Every item is tried; the first
// error is returned with all results.
func Copy(ctx context.Context, from, to *Mirror, parallelism int) ([]Stored, []error, error) {
	if !from.Dest.IsLayout() {
		return nil, nil, fmt.Errorf("%s: only an oci-layout: mirror can be copied from", from.Dest)
	}
	p, err := from.openLayout(false)
	if err != nil {
		return nil, nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	var descs []v1.Descriptor
	for _, d := range im.Manifests {
		if d.Annotations[annRefName] != "" {
			descs = append(descs, d)
		}
	}
	out := make([]Stored, len(descs))
	errs := budget.New(parallelism).Run(ctx, len(descs), func(ctx context.Context, i int) error {
		d := descs[i]
		n, err := parseName(d.Annotations[annRefName])
		if err != nil {
			return err
		}
		out[i].Name = n
		var item taggable
		if d.MediaType.IsIndex() {
			item, err = idx.ImageIndex(d.Digest)
		} else {
			item, err = idx.Image(d.Digest)
		}
		if err != nil {
			return fmt.Errorf("%s in %s: %w", n, from.Dest, err)
		}
		out[i], err = to.Put(ctx, n, item)
		return err
	})
	for _, err := range errs {
		if err != nil {
			return out, errs, err
		}
	}
	return out, errs, ctx.Err()
}

// parseName reads a name as a layout's index holds it: repo:tag or
// repo@digest.
func parseName(s string) (Name, error) {
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case '@':
			return Name{Repo: s[:i], Digest: s[i+1:]}, nil
		case ':':
			return Name{Repo: s[:i], Tag: s[i+1:]}, nil
		case '/':
			return Name{}, fmt.Errorf("%q is not a name a mirror writes (repo:tag or repo@digest)", s)
		}
	}
	return Name{}, fmt.Errorf("%q is not a name a mirror writes (repo:tag or repo@digest)", s)
}
