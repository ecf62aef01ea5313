package mirror

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The types and annotations of a mirrored file. The manifest follows the
// OCI 1.1 artifact guidance ORAS uses: an artifactType, the empty config,
// one layer holding the file as it is, titled with its file name, so that
// `oras pull` gets the file back.
const (
	ArtifactType  = "application/vnd.rootfsctl.file.v1"
	FileMediaType = "application/octet-stream"

	annTitle       = "org.opencontainers.image.title"
	annArtifact    = "dev.rootfsctl.artifact"          // what it is: "kubelet 1.33.1 linux/amd64"
	annURL         = "dev.rootfsctl.upstream.url"      // where it came from, without credentials or query
	annChecksum    = "dev.rootfsctl.upstream.sha256"   // the checksum it was verified against
	annChecksumSrc = "dev.rootfsctl.upstream.checksum" // the published checksum document, or "pinned"
)

// emptyConfig is the OCI empty descriptor's content.
var emptyConfig = []byte("{}")

// File is a downloaded, verified file as it is stored in a mirror.
type File struct {
	Artifact string // what it is, for messages
	Title    string // its file name
	URL      string // upstream, redacted
	SumFrom  string // the published checksum document (redacted), or "pinned"
	SHA256   string // hex; the layer's digest
	Size     int64
	// Open reads the file (when it is written to a mirror).
	Open func() (io.ReadCloser, error)
}

// maxManifest bounds a manifest read from a mirror.
const maxManifest = 1 << 20

// manifest is the artifact's manifest, deterministic for the same file:
// a second mirror writes the same digest and transfers nothing.
func (f File) manifest() ([]byte, error) {
	cfg := v1.Descriptor{MediaType: types.MediaType("application/vnd.oci.empty.v1+json"), Size: int64(len(emptyConfig)), Digest: digestOf(emptyConfig), Data: emptyConfig}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        cfg,
		Layers: []v1.Descriptor{{MediaType: FileMediaType, Size: f.Size,
			Digest: v1.Hash{Algorithm: "sha256", Hex: f.SHA256}, Annotations: map[string]string{annTitle: f.Title}}},
		Annotations: map[string]string{annArtifact: f.Artifact, annURL: f.URL, annChecksum: f.SHA256, annChecksumSrc: f.SumFrom},
	}
	return json.Marshal(m)
}

func digestOf(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b)) // reading memory cannot fail
	return h
}

// Image is f as a go-containerregistry image, to write to a registry or
// a layout.
func (f File) Image() (v1.Image, error) {
	raw, err := f.manifest()
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(fileImage{f: f, raw: raw})
}

type fileImage struct {
	f   File
	raw []byte
}

func (i fileImage) RawConfigFile() ([]byte, error)      { return emptyConfig, nil }
func (i fileImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i fileImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i fileImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h.Hex != i.f.SHA256 {
		return nil, fmt.Errorf("artifact %s has no blob %s", i.f.Artifact, h)
	}
	return fileLayer(i), nil
}

type fileLayer fileImage

func (l fileLayer) Digest() (v1.Hash, error) {
	return v1.Hash{Algorithm: "sha256", Hex: l.f.SHA256}, nil
}
func (l fileLayer) Compressed() (io.ReadCloser, error)  { return l.f.Open() }
func (l fileLayer) Size() (int64, error)                { return l.f.Size, nil }
func (l fileLayer) MediaType() (types.MediaType, error) { return FileMediaType, nil }

// ErrNotAnArtifact: what the mirror holds under an artifact's name is not
// one rootfsctl wrote, or was altered: its checksum annotation and its
// layer disagree.
var ErrNotAnArtifact = errors.New("not a rootfsctl artifact")

// parseFile reads an artifact manifest from a mirror and checks that it
// is one file whose digest is the checksum it was verified against.
func parseFile(raw []byte) (File, error) {
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return File{}, fmt.Errorf("%w: %v", ErrNotAnArtifact, err)
	}
	if m.ArtifactType != ArtifactType || len(m.Layers) != 1 {
		return File{}, fmt.Errorf("%w: artifactType %q with %d layers", ErrNotAnArtifact, m.ArtifactType, len(m.Layers))
	}
	l := m.Layers[0]
	sum := m.Annotations[annChecksum]
	if l.Digest.Algorithm != "sha256" || l.Digest.Hex != sum || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return File{}, fmt.Errorf("%w: its file's digest %s is not the checksum it was verified against (%q)", ErrNotAnArtifact, l.Digest, sum)
	}
	return File{Artifact: m.Annotations[annArtifact], Title: l.Annotations[annTitle], URL: m.Annotations[annURL],
		SumFrom: m.Annotations[annChecksumSrc], SHA256: sum, Size: l.Size}, nil
}
