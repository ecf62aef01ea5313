package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// install puts one prepared job's files from the cache into the machine.
func (in *Installer) install(ctx context.Context, root *os.Root, j Job, pl jobPlan) ([]file, error) {
	zerolog.Ctx(ctx).Debug().Str("phase", "install").Str("artifact", j.Artifact.Name).Msg("installing")
	if pl.members != nil {
		return in.installMembers(ctx, root, j, pl.digest, pl.members)
	}
	f, err := in.prepareFile(ctx, root, pl.dest, pl.digest, j.Artifact.Name)
	if err != nil {
		return nil, err
	}
	if err := f.Commit(0o755); err != nil {
		return nil, err
	}
	rec, err := recordFile(root, pl.dest, pl.digest, fetch.Redact(j.Artifact.URL), j.Artifact.key())
	if err != nil {
		return nil, err
	}
	zerolog.Ctx(ctx).Info().Str("artifact", j.Artifact.Name).Str("sha256", pl.digest).Str("path", pl.dest).Msg("installed")
	return []file{rec}, nil
}

// installMembers puts the archive's chosen members from the cache into
// the machine. Every member is made ready (staged, or written beside its
// destination) first and committed only when all are ready, so a failure
// installs none of them.
func (in *Installer) installMembers(ctx context.Context, root *os.Root, j Job, archive string, members []member) ([]file, error) {
	var pending []placed
	abort := func(fs []placed) {
		for _, f := range fs {
			f.Abort()
		}
	}
	for _, m := range members {
		f, err := in.prepareFile(ctx, root, m.Dest, m.SHA256, j.Artifact.Name+": "+m.Name)
		if err != nil {
			abort(pending)
			return nil, err
		}
		pending = append(pending, f)
	}
	var files []file
	for i, f := range pending {
		if err := f.Commit(0o755); err != nil {
			abort(pending[i+1:])
			return nil, err
		}
		rec, err := recordFile(root, members[i].Dest, members[i].SHA256, fetch.Redact(j.Artifact.URL)+"#"+members[i].Name, j.Artifact.key())
		if err != nil {
			return nil, err
		}
		files = append(files, rec)
	}
	zerolog.Ctx(ctx).Info().Str("artifact", j.Artifact.Name).Str("sha256", archive).Int("files", len(files)).Msg("installed")
	return files, nil
}

// placed is a file ready to go into the machine at its destination.
type placed interface {
	Commit(mode fs.FileMode) error
	Abort()
}

// prepareFile makes the file digest ready to go to dest: a staged copy
// reserved for it, or else a copy from the cache written and verified
// beside dest. Either way the work that can fail on the content is done
// here, before anything is committed.
func (in *Installer) prepareFile(ctx context.Context, root *os.Root, dest, digest, what string) (placed, error) {
	if name, ok := in.reserve(root, digest); ok {
		return &stagedFile{in: in, ctx: ctx, root: root, dest: dest, name: name, digest: digest, what: what}, nil
	}
	return in.copyFromCache(ctx, root, dest, digest, what)
}

// stagedFile is a staged file reserved for dest; its Commit renames it
// into place (copying from the cache only if the rename fails after all).
type stagedFile struct {
	in                       *Installer
	ctx                      context.Context
	root                     *os.Root
	dest, name, digest, what string
}

func (s *stagedFile) Commit(mode fs.FileMode) error {
	ok, err := s.in.takeStaged(s.root, s.dest, s.name)
	if ok || err != nil {
		return err
	}
	f, err := s.in.copyFromCache(s.ctx, s.root, s.dest, s.digest, s.what)
	if err != nil {
		return err
	}
	return f.Commit(mode)
}

// Abort leaves the staged file to the stage's removal.
func (s *stagedFile) Abort() {}

// copyFromCache stages a copy of a cache entry at dest inside the machine
// and checks the copy's digest (the one hash of the install). A damaged
// entry is removed, so a retry downloads it again.
func (in *Installer) copyFromCache(ctx context.Context, root *os.Root, dest, digest, what string) (*atomicfile.File, error) {
	src, err := in.Cache.OpenUnverified(digest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("install %s: %w", what, errEntryGone)
	}
	if err != nil {
		return nil, fmt.Errorf("install %s: open cache entry: %w", what, err)
	}
	defer src.Close()
	f, err := atomicfile.Create(root, dest, in.Step)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, fetch.CancelReader(ctx, src)); err != nil {
		f.Abort()
		return nil, fmt.Errorf("install %s: %w", what, err)
	}
	if got := f.Digest(); got != digest {
		f.Abort()
		in.Cache.Remove(digest)
		return nil, fmt.Errorf("install %s: %w (got %s, want %s); removed it, a retry downloads it again", what, cache.ErrCorrupt, got, digest)
	}
	return f, nil
}
