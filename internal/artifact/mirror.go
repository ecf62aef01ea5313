package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// fallBack reports whether an artifact the mirror could not give (err)
// comes from upstream: only when the mirror lacks it and the apply allows
// fallback. Any other failure of the mirror is the download's.
func (in *Installer) fallBack(err error) bool {
	return err != nil && in.Fallback && errors.Is(err, mirror.ErrMissing)
}

// mirrorSum is the checksum the mirror recorded for the artifact: the one
// it was verified against upstream when it was mirrored.
func (in *Installer) mirrorSum(ctx context.Context, a Artifact) (string, error) {
	n, err := mirror.ArtifactName(a.URL)
	if err != nil {
		return "", retry.Permanent(fmt.Errorf("download %s: %w", a.Name, err))
	}
	f, err := in.Mirror.File(ctx, n)
	switch {
	case errors.Is(err, mirror.ErrMissing) && !in.Fallback, errors.Is(err, mirror.ErrNotAnArtifact):
		return "", retry.Permanent(fmt.Errorf("download %s: %w; nothing was installed", a.Name, err))
	case err != nil:
		return "", fmt.Errorf("download %s: %w", a.Name, err)
	}
	return f.SHA256, nil
}

// fetchMirror reads the artifact's file, by its digest, from the mirror
// into e; the entry's commit verifies it.
func (in *Installer) fetchMirror(ctx context.Context, a Artifact, want string, e *cache.Entry) error {
	n, err := mirror.ArtifactName(a.URL)
	if err != nil {
		return retry.Permanent(fmt.Errorf("download %s: %w", a.Name, err))
	}
	zerolog.Ctx(ctx).Debug().Str("phase", "download").Str("artifact", a.Name).Str("mirror", in.Mirror.Dest.String()).Msg("downloading from the mirror")
	pr := &progress{ctx: ctx, name: a.Name}
	defer pr.done()
	err = in.Mirror.Reg.Try(ctx, func(ctx context.Context) error {
		if err := restart(e); err != nil {
			return retry.Permanent(err)
		}
		rc, err := in.Mirror.OpenFile(ctx, n, mirror.File{SHA256: want})
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(e, &counting{r: rc, add: func(k int) { pr.add(-1, k) }})
		return err
	})
	if errors.Is(err, mirror.ErrMissing) && !in.Fallback {
		return retry.Permanent(fmt.Errorf("download %s: %w", a.Name, err))
	}
	if err != nil {
		return fmt.Errorf("download %s from the mirror %s: %w", a.Name, in.Mirror.Dest, err)
	}
	return nil
}

// restart empties an entry for another attempt.
func restart(e *cache.Entry) error {
	if err := e.Truncate(0); err != nil {
		return err
	}
	_, err := e.Seek(0, io.SeekStart)
	return err
}

type counting struct {
	r   io.Reader
	add func(int)
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.add(n)
	}
	return n, err
}

// Artifacts are what the step downloads.
func (in *Installer) Artifacts() []Artifact {
	out := make([]Artifact, len(in.Jobs))
	for i, j := range in.Jobs {
		out[i] = j.Artifact
	}
	return out
}

// MirrorOne stores one of the step's artifacts in m: downloaded and
// verified upstream first (or taken from the cache, where it was
// verified), then written as an artifact named after its upstream URL.
func (in *Installer) MirrorOne(ctx context.Context, m *mirror.Mirror, a Artifact) (mirror.Stored, error) {
	hold := &pins{}
	defer hold.release()
	sum, err := in.ensureCached(ctx, a, hold)
	if err != nil {
		return mirror.Stored{}, err
	}
	n, err := mirror.ArtifactName(a.URL)
	if err != nil {
		return mirror.Stored{}, err
	}
	rc, size, err := in.Cache.Open(sum)
	if err != nil {
		return mirror.Stored{}, fmt.Errorf("%s: %w", a.Name, err)
	}
	rc.Close()
	f := mirror.File{Artifact: a.Name, Title: title(a.URL), URL: fetch.Redact(a.URL), SumFrom: a.SumFrom(), SHA256: sum, Size: size,
		Open: func() (io.ReadCloser, error) {
			rc, _, err := in.Cache.Open(sum)
			return rc, err
		}}
	return m.PutFile(ctx, n, f)
}

// SumFrom says where an artifact's checksum comes from: "pinned" in the
// plan, or the published document's URL (redacted) and the name in it.
func (a Artifact) SumFrom() string {
	if a.Pinned != "" {
		return "pinned"
	}
	return fetch.Redact(a.SumURL) + "#" + a.SumFile
}

// title is the file name of an artifact's URL.
func title(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "file"
	}
	return path.Base(u.Path)
}
