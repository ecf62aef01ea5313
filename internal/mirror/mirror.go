// Package mirror stores what a plan fetches (its image and every
// downloaded file) in an OCI registry or an OCI image layout, and finds
// it there again, so that fleets and sites without internet provision
// from a registry they already run.
//
// Names are derived from the upstream source alone (ArtifactName,
// ImageName), so that any later mirror or apply finds an item without an
// index of its own. A file is an OCI artifact whose one layer is the file
// as it is: its digest is the SHA-256 it was verified against upstream,
// so the chain from the published checksum to the OCI digest is one
// check. Images keep their manifests, so a machine does not see an image
// change when it moves to a mirror.
//
// It reaches registries only through internal/oci (credentials, one retry
// policy, timeouts) and writes nothing but to its Dest.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/rootfsctl/rootfsctl/internal/oci"
)

// Mirror is one Dest, read and written through one registry client.
type Mirror struct {
	Dest Dest
	Reg  *oci.Registry

	mu sync.Mutex // a layout's index.json is rewritten whole: one writer at a time
}

// ErrMissing: the mirror has no item of that name (a *MissingError says
// which).
var ErrMissing = errors.New("not in the mirror")

// MissingError names an item a mirror lacks, and what to do about it.
type MissingError struct {
	Name Name
	Dest Dest
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s is not in the mirror %s; mirror the plan again, or allow missing items from upstream", e.Name, e.Dest)
}

// Is makes a *MissingError an ErrMissing.
func (e *MissingError) Is(target error) bool { return target == ErrMissing }

// Missing is the error that says the mirror lacks n.
func (m *Mirror) Missing(n Name) error { return &MissingError{Name: n, Dest: m.Dest} }

// annRefName names a manifest in a layout's index.
const annRefName = "org.opencontainers.image.ref.name"

// ref is n's full reference in the registry.
func (m *Mirror) ref(n Name) (name.Reference, error) {
	if n.Digest != "" {
		return name.NewDigest(m.Dest.repo(n.Repo)+"@"+n.Digest, name.StrictValidation)
	}
	return name.NewTag(m.Dest.repo(n.Repo)+":"+n.Tag, name.StrictValidation)
}

// Where is where n is in the mirror, as a person would look for it.
func (m *Mirror) Where(n Name) string {
	if m.Dest.IsLayout() {
		return m.Dest.String() + " " + n.String()
	}
	if n.Digest != "" {
		return m.Dest.repo(n.Repo) + "@" + n.Digest
	}
	return m.Dest.repo(n.Repo) + ":" + n.Tag
}

// Reachable asks a registry mirror once whether it answers (a manifest
// that does not exist is an answer), so that a mirror run to a registry
// that is down fails at once with one clear error. A layout is always
// reachable.
func (m *Mirror) Reachable(ctx context.Context) error {
	if m.Dest.IsLayout() {
		return nil
	}
	ref, err := m.ref(Name{Repo: "rootfsctl-probe", Tag: "probe"})
	if err != nil {
		return err
	}
	if _, err := remote.Head(ref, m.Reg.RemoteOptions(ctx)...); err != nil && !oci.IsNotFound(err) {
		return fmt.Errorf("the mirror %s cannot be reached: %w", m.Dest, err)
	}
	return nil
}

// ImageRef is the reference an apply resolves an image named n from.
func (m *Mirror) ImageRef(n Name) (oci.Ref, error) {
	if m.Dest.IsLayout() {
		return oci.LayoutRef(m.Dest.Layout, n.String()), nil
	}
	ref, err := m.ref(n)
	if err != nil {
		return oci.Ref{}, err
	}
	return oci.FromReference(ref), nil
}

// Stored is what a put did: Copied is false when the mirror held the item
// already (same name, same digest), and nothing was transferred.
type Stored struct {
	Name   Name
	Digest string
	Copied bool
}

// taggable is an image or an index.
type taggable interface {
	Digest() (v1.Hash, error)
}

// Put stores an image, an index or a File's image under n, unless the
// mirror holds that very digest under n already.
func (m *Mirror) Put(ctx context.Context, n Name, item taggable) (Stored, error) {
	d, err := item.Digest()
	if err != nil {
		return Stored{}, err
	}
	st := Stored{Name: n, Digest: d.String()}
	if m.Dest.IsLayout() {
		st.Copied, err = m.putLayout(n, d, item)
		return st, err
	}
	ref, err := m.ref(n)
	if err != nil {
		return st, err
	}
	err = m.Reg.Try(ctx, func(ctx context.Context) error {
		if have, err := remote.Head(ref, m.Reg.RemoteOptions(ctx)...); err == nil && have.Digest == d {
			return nil
		}
		st.Copied = true
		switch it := item.(type) {
		case v1.ImageIndex:
			return remote.WriteIndex(ref, it, m.Reg.RemoteOptions(ctx)...)
		case v1.Image:
			return remote.Write(ref, it, m.Reg.RemoteOptions(ctx)...)
		}
		return fmt.Errorf("cannot store a %T", item)
	})
	if err != nil {
		st.Copied = false // nothing whole was stored
		return st, fmt.Errorf("store %s in %s: %w", n, m.Dest, err)
	}
	return st, nil
}

// putLayout replaces what the layout names n with item, unless it is item.
func (m *Mirror) putLayout(n Name, d v1.Hash, item taggable) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.openLayout(true)
	if err != nil {
		return false, err
	}
	if have, err := m.lookup(p, n); err == nil && have.Digest == d {
		return false, nil
	}
	anns := layout.WithAnnotations(map[string]string{annRefName: n.String()})
	byName := match.Annotation(annRefName, n.String())
	switch it := item.(type) {
	case v1.ImageIndex:
		err = p.ReplaceIndex(it, byName, anns)
	case v1.Image:
		err = p.ReplaceImage(it, byName, anns)
	default:
		err = fmt.Errorf("cannot store a %T", item)
	}
	if err != nil {
		return false, fmt.Errorf("store %s in %s: %w", n, m.Dest, err)
	}
	return true, nil
}

// openLayout opens the Dest's layout; with create, a missing or empty
// directory becomes an empty layout. Anything else that is not a layout
// is refused and left alone.
func (m *Mirror) openLayout(create bool) (layout.Path, error) {
	dir := m.Dest.Layout
	if err := oci.CheckLayout(dir); err == nil {
		return layout.Path(dir), nil
	} else if !create || !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s is not an OCI image layout: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	if len(entries) > 0 {
		return "", fmt.Errorf("%s is not an OCI image layout (it has no index.json) and is not empty; nothing was written", dir)
	}
	return layout.Write(dir, empty.Index)
}

// lookup is the descriptor the layout's index names n.
func (m *Mirror) lookup(p layout.Path, n Name) (v1.Descriptor, error) {
	idx, err := p.ImageIndex()
	if err != nil {
		return v1.Descriptor{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		if d.Annotations[annRefName] == n.String() {
			return d, nil
		}
	}
	return v1.Descriptor{}, m.Missing(n)
}

// PutFile stores a verified file as an artifact named after its upstream
// URL.
func (m *Mirror) PutFile(ctx context.Context, n Name, f File) (Stored, error) {
	img, err := f.Image()
	if err != nil {
		return Stored{}, err
	}
	return m.Put(ctx, n, img)
}

// File reads the artifact named n: its manifest only, checked to be one
// file whose digest is the checksum it was verified against upstream.
func (m *Mirror) File(ctx context.Context, n Name) (File, error) {
	var raw []byte
	var err error
	if m.Dest.IsLayout() {
		raw, err = m.layoutManifest(n)
	} else {
		raw, err = m.remoteManifest(ctx, n)
	}
	if err != nil {
		return File{}, err
	}
	f, err := parseFile(raw)
	if err != nil {
		return File{}, fmt.Errorf("%s in %s: %w", n, m.Dest, err)
	}
	return f, nil
}

func (m *Mirror) remoteManifest(ctx context.Context, n Name) ([]byte, error) {
	ref, err := m.ref(n)
	if err != nil {
		return nil, err
	}
	var desc *remote.Descriptor
	err = m.Reg.Try(ctx, func(ctx context.Context) (err error) {
		desc, err = remote.Get(ref, m.Reg.RemoteOptions(ctx)...)
		return err
	})
	if oci.IsNotFound(err) {
		return nil, m.Missing(n)
	}
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", n, m.Dest, err)
	}
	return desc.Manifest, nil
}

func (m *Mirror) layoutManifest(n Name) ([]byte, error) {
	p, err := m.openLayout(false)
	if err != nil {
		return nil, err
	}
	d, err := m.lookup(p, n)
	if err != nil {
		return nil, err
	}
	if d.Size > maxManifest {
		return nil, fmt.Errorf("%s in %s: manifest of %d bytes is larger than any artifact's", n, m.Dest, d.Size)
	}
	rc, err := p.Blob(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", n, m.Dest, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxManifest))
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", n, m.Dest, err)
	}
	if digestOf(raw) != d.Digest {
		return nil, fmt.Errorf("%s in %s: %w: its manifest does not match its digest", n, m.Dest, ErrNotAnArtifact)
	}
	return raw, nil
}

// OpenFile reads the file of the artifact named n. The caller verifies
// what it reads against f.SHA256.
func (m *Mirror) OpenFile(ctx context.Context, n Name, f File) (io.ReadCloser, error) {
	h := v1.Hash{Algorithm: "sha256", Hex: f.SHA256}
	if m.Dest.IsLayout() {
		p, err := m.openLayout(false)
		if err != nil {
			return nil, err
		}
		rc, err := p.Blob(h)
		if errors.Is(err, os.ErrNotExist) {
			return nil, m.Missing(n)
		}
		return rc, err
	}
	ref, err := m.ref(n)
	if err != nil {
		return nil, err
	}
	rc, err := m.Reg.OpenBlob(ctx, ref.Context(), h.String())
	if oci.IsNotFound(err) {
		return nil, m.Missing(n)
	}
	return rc, err
}
