package artifact

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

// The stage: while the rootfs is still being unpacked, the prefetch copies
// the files the step will install into a directory of the step's own
// beside the machine directory, each verified against its digest, synced
// and named by it. Once the rootfs is in place the install renames each
// one into the machine, so the install on the run's critical path is a
// rename per file instead of a copy, a hash and a sync.
//
// Nothing about the machine is weakened: the stage is a 0700 directory
// the run made (a planted one is removed, never used), the file enters the
// machine by renameat into a directory opened through the machine's
// os.Root, under its base name (a symlink there is replaced, never
// followed), and only a complete, verified and synced file has its digest
// as its name. When the stage cannot be used (another file system, the
// file taken by an earlier destination of the same content), the install
// copies from the cache as before.

// stagePath is the step's stage beside the machine directory. Its name
// carries the temporary-file marker, so that harnesses looking for
// leftovers see it.
func stagePath(machineDir, step string) string {
	return filepath.Join(filepath.Dir(machineDir), "."+filepath.Base(machineDir)+".rootfsctl-tmp-stage-"+step)
}

// stage is a step's open stage directory.
type stage struct {
	dir      string
	root     *os.Root
	dev      uint64       // its file system: a rename reaches only the same one
	reserved atomic.Int64 // names handed out by reserve
}

// newStage removes what a killed run left at the step's stage and makes
// it anew, a directory of this user's that no one else can enter.
func newStage(machineDir, step string) (*stage, error) {
	dir := stagePath(machineDir, step)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	st, err := statRoot(root)
	if err == nil && (st.Uid != uint32(os.Geteuid()) || st.Mode&0o077 != 0) {
		err = fmt.Errorf("%s is not a private directory of this user's", dir)
	}
	if err != nil {
		root.Close()
		return nil, err
	}
	return &stage{dir: dir, root: root, dev: st.Dev}, nil
}

// statRoot is what fstat says of root's top directory.
func statRoot(root *os.Root) (unix.Stat_t, error) {
	var st unix.Stat_t
	top, err := root.Open(".")
	if err != nil {
		return st, err
	}
	defer top.Close()
	return st, unix.Fstat(int(top.Fd()), &st)
}

// current is this run's stage, or nil.
func (in *Installer) current() *stage {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.staged
}

// put stages a verified copy of the cache entry digest, unless one is
// staged already. An entry this run wrote (and hashed as it wrote it) is
// copied in the kernel without hashing it again; one from an earlier run
// is hashed as it is copied, as every read of the cache is verified. A
// cancelled ctx stops the copy within a chunk.
func (in *Installer) put(ctx context.Context, s *stage, digest string) error {
	if _, err := s.root.Lstat(digest); err == nil {
		return nil
	}
	if _, fresh := in.fresh.Load(digest); !fresh {
		f, err := in.copyFromCache(ctx, s.root, digest, digest, digest)
		if err != nil {
			return err
		}
		return f.Commit(0o755)
	}
	src, err := in.Cache.OpenUnverified(digest)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := atomicfile.Create(s.root, digest, in.Step)
	if err != nil {
		return err
	}
	if err := f.CopyKnown(ctx, src, digest); err != nil {
		f.Abort()
		return err
	}
	return f.Commit(0o755)
}

// remove deletes the stage and whatever it still holds. Best effort: a
// leftover is removed by the step's next prefetch or Tidy.
func (s *stage) remove() {
	s.root.Close()
	_ = os.RemoveAll(s.dir)
}

// stageAll stages every file the prefetched job installs: the artifact
// itself or its chosen members. A failure only means the install copies.
func (in *Installer) stageAll(ctx context.Context, digests []string) {
	s := in.current()
	if s == nil {
		return
	}
	for _, d := range digests {
		if ctx.Err() != nil {
			return
		}
		if err := in.put(ctx, s, d); err != nil {
			zerolog.Ctx(ctx).Debug().Err(err).Str("sha256", d).Msg("not staged; the install copies it")
		}
	}
}

// installedArtifacts are the artifacts the machine's install record names:
// those whose files the install will likely keep, so the prefetch leaves
// them alone. None when there is no machine or record yet.
func (in *Installer) installedArtifacts() map[string]bool {
	out := map[string]bool{}
	root, err := machine.Open(in.MachineDir)
	if err != nil {
		return out
	}
	defer root.Close()
	if rec, err := readRecord(root, in.Step); err == nil && rec != nil {
		for _, f := range rec.Files {
			out[f.Artifact] = true
		}
	}
	return out
}

// openStage makes the step's stage for this run's prefetch.
func (in *Installer) openStage(ctx context.Context) {
	s, err := newStage(in.MachineDir, in.Step)
	if err != nil {
		zerolog.Ctx(ctx).Debug().Err(err).Msg("no stage beside the machine; installs copy from the cache")
		return
	}
	var st unix.Stat_t
	if unix.Stat(in.MachineDir, &st) == nil && st.Dev != s.dev {
		// A machine on another file system (a symlink to another
		// volume): no rename could take a staged file there.
		s.remove()
		zerolog.Ctx(ctx).Debug().Msg("the machine is on another file system than its parent; installs copy from the cache")
		return
	}
	in.mu.Lock()
	old := in.staged
	in.staged = s
	in.mu.Unlock()
	if old != nil {
		old.root.Close() // a stage of an earlier run that was never released; its directory was just replaced
	}
}

// Release removes the stage once the run is over.
func (in *Installer) Release(context.Context) {
	in.mu.Lock()
	s := in.staged
	in.staged = nil
	in.mu.Unlock()
	if s != nil {
		s.remove()
	}
}

// reserve takes the staged copy of digest for one destination in root (the
// machine): it renames it to a name of its own inside the stage, so no
// other destination takes it, and returns that name. It is false when
// there is no such copy, or the machine is on another file system than
// the stage (a rename could not reach it): then the caller copies from the
// cache, before anything is committed.
func (in *Installer) reserve(root *os.Root, digest string) (string, bool) {
	s := in.current()
	if s == nil {
		return "", false
	}
	if st, err := statRoot(root); err != nil || st.Dev != s.dev {
		return "", false
	}
	name := fmt.Sprintf("reserved-%d", s.reserved.Add(1))
	if err := s.root.Rename(digest, name); err != nil {
		return "", false // none staged, or another destination took it
	}
	return name, true
}

// takeStaged renames the reserved staged file name to dest inside the
// machine and reports whether it did; false (and no error) means the
// rename could not be made and the caller copies.
func (in *Installer) takeStaged(root *os.Root, dest, name string) (bool, error) {
	s := in.current()
	if s == nil {
		return false, nil
	}
	dir := path.Dir(dest)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create directory %s: %w", dir, err)
	}
	if fi, err := root.Lstat(dest); err == nil && fi.IsDir() {
		return false, fmt.Errorf("install %s: a directory is in the way", dest)
	}
	to, err := root.Open(dir)
	if err != nil {
		return false, fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer to.Close()
	from, err := s.root.Open(".")
	if err != nil {
		return false, nil
	}
	defer from.Close()
	err = unix.Renameat(int(from.Fd()), name, int(to.Fd()), path.Base(dest))
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EXDEV):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("rename into place %s: %w", dest, err)
	}
	if err := to.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return true, fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return true, nil
}
