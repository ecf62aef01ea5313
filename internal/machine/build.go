package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// BuildOptions say how Build treats what is at the machine directory.
type BuildOptions struct {
	// Replace moves a rootfs that is there aside, and removes it once the
	// new one is in place; without it the directory must be missing or
	// empty.
	Replace bool
	// Privileged makes the rootfs's top directory root's.
	Privileged bool
}

// Build makes dir a machine's root filesystem, whole or not at all: fill
// writes it into a staging directory beside dir and says what it wrote;
// its Record goes in last, into a state directory of its own (whatever the
// image had there), and the whole is synced and renamed to dir, so a crash
// never leaves a half-written rootfs that a later run could take for one. Missing parents are made 0700, as
// /var/lib/machines is: a rootfs holds setuid-root programs and device
// nodes, which host users must not reach. The top directory is 0755
// whatever fill does to it.
func Build(ctx context.Context, dir string, o BuildOptions, fill func(root *os.Root) (Record, error)) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	if err := MountPointProblem(dir); err != nil {
		return err
	}
	Tidy(ctx, dir)
	staging, err := newStaging(dir, o.Privileged)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			// Best effort; a leftover is removed by the next run and never accepted.
			_ = os.RemoveAll(staging)
		}
	}()
	if err := fillSynced(staging, fill); err != nil {
		return err
	}
	if o.Replace {
		old, err := moveAside(dir)
		if err != nil {
			return err
		}
		defer func() {
			if err := os.RemoveAll(old); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("path", old).Msg("could not remove the old rootfs; the next run retries")
			}
		}()
	} else if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove empty machine directory: %w", err)
	}
	if err := os.Rename(staging, dir); err != nil {
		return fmt.Errorf("move rootfs into place: %w", err)
	}
	committed = true
	if d, err := os.Open(parent); err == nil {
		_ = d.Sync() // durability of the rename; the data itself is already synced
		d.Close()
	}
	return nil
}

// Names of directories beside a machine directory: the staging area of a
// build in progress, and a replaced rootfs waiting to be deleted.
func stagingPrefix(dir string) string { return "." + filepath.Base(dir) + ".rootfsctl-staging-" }
func oldPrefix(dir string) string     { return "." + filepath.Base(dir) + ".rootfsctl-old-" }

// newStaging makes the staging directory beside dir: mode 0755 and, when
// privileged, root's, whatever the image's "./" entry says (the unpack
// leaves the target itself alone).
func newStaging(dir string, privileged bool) (string, error) {
	staging, err := os.MkdirTemp(filepath.Dir(dir), stagingPrefix(dir))
	if err != nil {
		return "", fmt.Errorf("create staging directory: %w", err)
	}
	err = os.Chmod(staging, 0o755)
	if err != nil {
		err = fmt.Errorf("chmod staging directory: %w", err)
	} else if privileged {
		if err = os.Lchown(staging, 0, 0); err != nil {
			err = fmt.Errorf("chown staging directory: %w", err)
		}
	}
	if err != nil {
		_ = os.RemoveAll(staging) // best effort, as in Build
		return "", err
	}
	return staging, nil
}

// fillSynced runs fill on the staging directory's root, writes the record,
// and puts all of it on disk before the rename that makes it the machine.
func fillSynced(staging string, fill func(root *os.Root) (Record, error)) error {
	root, err := os.OpenRoot(staging)
	if err != nil {
		return fmt.Errorf("open staging directory: %w", err)
	}
	defer root.Close()
	rec, err := fill(root)
	if err != nil {
		return err
	}
	if err := writeRecord(root, rec); err != nil {
		return err
	}
	top, err := root.Open(".")
	if err != nil {
		return err
	}
	err = unix.Syncfs(int(top.Fd()))
	top.Close()
	if err != nil {
		return fmt.Errorf("sync staging directory: %w", err)
	}
	return nil
}

// moveAside renames the rootfs at dir to a new name beside it, which it
// returns.
func moveAside(dir string) (string, error) {
	old, err := os.MkdirTemp(filepath.Dir(dir), oldPrefix(dir))
	if err != nil {
		return "", fmt.Errorf("create directory for the old rootfs: %w", err)
	}
	if err := os.Remove(old); err != nil {
		return "", err
	}
	if err := os.Rename(dir, old); err != nil {
		return "", fmt.Errorf("move old rootfs aside: %w", err)
	}
	return old, nil
}

// Tidy removes the staging and old directories that interrupted builds
// left beside dir. They are never accepted as a rootfs. Best effort.
func Tidy(ctx context.Context, dir string) {
	parent := filepath.Dir(dir)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	log := zerolog.Ctx(ctx)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stagingPrefix(dir)) || strings.HasPrefix(e.Name(), oldPrefix(dir)) {
			p := filepath.Join(parent, e.Name())
			log.Info().Str("path", p).Msg("removing leftover of an interrupted run")
			if err := os.RemoveAll(p); err != nil {
				log.Warn().Err(err).Str("path", p).Msg("could not remove leftover")
			}
		}
	}
}

// MountPointProblem refuses a machine directory that is a mount point (an
// empty volume): the rootfs is built beside it and renamed into place when
// complete, and nothing can be renamed onto a mount point; the build would
// end in "device or resource busy" after all its work.
func MountPointProblem(dir string) error {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &parent) != nil {
		return nil // missing: nothing is mounted there
	}
	if st.Dev != parent.Dev {
		return retry.Permanent(fmt.Errorf("machine directory %s is a mount point: rootfsctl unpacks beside it and renames the rootfs into place, which a mount point cannot take; use a directory inside the volume as machineDir", dir))
	}
	return nil
}

// Empty reports whether the directory dir is empty: a rootfs is built only
// into a missing or empty one. A missing dir is an error matching
// fs.ErrNotExist.
func Empty(dir string) (bool, error) {
	d, err := os.Open(dir)
	if err != nil {
		return false, fmt.Errorf("open machine directory: %w", err)
	}
	names, err := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("read machine directory: %w", err)
	}
	return true, nil
}

// Guard is the first directory on the way from / down to dir that stops
// other host users from reaching below it (it gives others no search
// permission), and whether it is one Build would create (mode 0700, so it
// stops them too). It is "" when every directory lets them through.
func Guard(dir string) (guard string, missing bool) {
	var dirs []string
	for d := dir; ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		fi, err := os.Stat(dirs[i])
		if err != nil {
			return dirs[i], true
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return dirs[i], false
		}
	}
	return "", false
}
