package artifact

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// member is a chosen archive member: where it goes and its content.
type member struct {
	Name   string `json:"name"` // in the archive
	Dest   string `json:"dest"` // inside the machine
	SHA256 string `json:"sha256"`
}

// extracted returns the archive's chosen members as cache entries, taking
// them apart once (during prefetch, while the workspace is unpacked) and
// remembering the list in the cache.
func (in *Installer) extracted(ctx context.Context, j Job, archive string, hold *pins) ([]member, error) {
	key := "members:" + j.Selection + ":" + archive
	if members, ok := in.indexed(j, key, hold); ok {
		return members, nil
	}
	rc, _, err := in.Cache.Open(archive)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("extract %s: %w", j.Artifact.Name, errEntryGone)
	}
	if err != nil {
		return nil, fmt.Errorf("extract %s: open cache entry: %w", j.Artifact.Name, err)
	}
	var members []member
	err = scanArchive(ctx, rc, j, func(m member, content io.Reader) error {
		e, err := in.Cache.Create()
		if err != nil {
			return err
		}
		if _, err := io.Copy(e, content); err != nil {
			e.Abort()
			return fmt.Errorf("extract %s: %s: %w", j.Artifact.Name, m.Name, err)
		}
		m.SHA256 = e.Digest()
		members = append(members, m)
		if err := hold.commit(e, m.SHA256); err != nil {
			return err
		}
		in.fresh.Store(m.SHA256, true)
		return nil
	})
	// Close verifies what the scan did not read: a damaged entry, not the
	// archive, is then the cause of a failure, and a retry downloads it.
	if cerr := rc.Close(); errors.Is(cerr, cache.ErrCorrupt) && !errors.Is(err, cache.ErrCorrupt) {
		return nil, fmt.Errorf("extract %s: %w; removed it, a retry downloads it again", j.Artifact.Name, cerr)
	}
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(members)
	if err := in.Cache.PutIndex(key, b); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("could not remember an archive's members in the cache")
	}
	return members, nil
}

// indexed returns the members remembered under key when every one of them
// is still in the cache (pinned in hold, when given). A list the job would
// not have made (a name it does not choose, another destination, a
// malformed digest, a destination twice) is forgotten: the archive is
// taken apart again.
func (in *Installer) indexed(j Job, key string, hold *pins) ([]member, bool) {
	var members []member
	b, ok := in.Cache.Index(key)
	if !ok {
		return nil, false
	}
	if json.Unmarshal(b, &members) != nil || len(members) == 0 || !j.made(members) {
		in.Cache.RemoveIndex(key)
		return nil, false
	}
	for _, m := range members {
		if hold != nil && !hold.pin(in.Cache, m.SHA256) || hold == nil && !in.Cache.Has(m.SHA256) {
			return nil, false
		}
	}
	return members, true
}

// made reports whether the job's scan could have chosen these members.
func (j Job) made(members []member) bool {
	dests := map[string]bool{}
	for _, m := range members {
		name, err := memberName(m.Name)
		dest, ok := j.Pick(name)
		if err != nil || name != m.Name || !ok || dest != m.Dest || dests[dest] || !fetch.IsSHA256(m.SHA256) {
			return false
		}
		dests[dest] = true
	}
	return true
}

// scanArchive reads a gzipped tar archive as untrusted input and hands each
// chosen member to sink. Absolute names, "..", backslashes and NUL are
// refused, a chosen member must be a regular file, and every required
// member must be there. It reads r to the end (where the cache verifies the
// archive's digest).
func scanArchive(ctx context.Context, r io.Reader, j Job, sink func(m member, content io.Reader) error) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return retry.Permanent(fmt.Errorf("extract %s: %w", j.Artifact.Name, err))
	}
	defer zr.Close()
	s := scan{job: j, found: map[string]bool{}, byDest: map[string]string{}}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		switch {
		case err == io.EOF:
			return s.finish(r)
		case err != nil:
			return s.refuse(err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		m, ok, err := s.choose(hdr)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := sink(m, tr); err != nil {
			return err
		}
		s.found[path.Base(m.Dest)] = true
		s.n++
	}
}

// scan is what scanArchive keeps track of.
type scan struct {
	job    Job
	found  map[string]bool   // base names of the destinations handed on
	byDest map[string]string // destination -> member name as written
	n      int
}

func (s *scan) refuse(err error) error {
	return retry.Permanent(fmt.Errorf("extract %s: %w", s.job.Artifact.Name, err))
}

// choose says whether the member is installed, and where; an error
// refuses the whole archive.
func (s *scan) choose(hdr *tar.Header) (member, bool, error) {
	name, err := memberName(hdr.Name)
	if err != nil {
		return member{}, false, s.refuse(err)
	}
	dest, ok := s.job.Pick(name)
	switch {
	case !ok, hdr.Typeflag == tar.TypeDir:
		return member{}, false, nil
	case hdr.Typeflag != tar.TypeReg:
		return member{}, false, s.refuse(fmt.Errorf("member %s is not a regular file (type %q); refusing", name, hdr.Typeflag))
	case s.job.ExecutablesOnly && hdr.Mode&0o111 == 0:
		return member{}, false, nil // a document (LICENSE, README), not a program
	}
	if first, dup := s.byDest[dest]; dup {
		return member{}, false, s.refuse(fmt.Errorf("members %s and %s both install %s; refusing an ambiguous archive", first, hdr.Name, dest))
	}
	s.byDest[dest] = hdr.Name
	return member{Name: name, Dest: dest}, true, nil
}

// finish reads the archive r to its end (where the cache verifies its
// digest) and checks that every required member was there.
func (s *scan) finish(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("extract %s: %w", s.job.Artifact.Name, err)
	}
	var missing []string
	for _, req := range s.job.Require {
		if !s.found[req] {
			missing = append(missing, req)
		}
	}
	if s.n == 0 {
		missing = append(missing, "any wanted file")
	}
	if len(missing) > 0 {
		return retry.Permanent(fmt.Errorf("extract %s: the archive lacks %s; nothing was installed", s.job.Artifact.Name, strings.Join(missing, ", ")))
	}
	return nil
}

// memberName validates and normalises an archive member name.
func memberName(raw string) (string, error) {
	switch {
	case strings.ContainsAny(raw, "\\\x00"):
		return "", fmt.Errorf("member %q: backslash or NUL in name; refusing", raw)
	case strings.HasPrefix(raw, "/"):
		return "", fmt.Errorf("member %q: absolute path; refusing", raw)
	}
	name := path.Clean(strings.TrimPrefix(raw, "./"))
	if name == ".." || strings.HasPrefix(name, "../") {
		return "", fmt.Errorf("member %q: escapes the archive with ..; refusing", raw)
	}
	return name, nil
}
