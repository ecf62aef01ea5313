package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/retry"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Resource is implemented by steps that change something other runs must
// not change at the same time, such as a machine directory. Before applying,
// Run takes an exclusive lock per resource.
type Resource interface {
	Resources() []string // absolute paths
}

// lockHolder describes the run holding a lock, as written in its lock file.
type lockHolder struct {
	PID     int       `json:"pid"`
	Plan    string    `json:"plan"`
	Started time.Time `json:"started"`
}

// LockedError says a resource is being changed by another run.
type LockedError struct {
	Resource string
	Holder   lockHolder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is being provisioned by another rootfsctl (pid %d, plan %s, since %s)",
		e.Resource, e.Holder.PID, e.Holder.Plan, e.Holder.Started.Format(time.RFC3339))
}

// lockKey is what a resource is, whatever path spells it: the path with
// its nearest existing ancestor's symlinks resolved (a machine directory
// that does not exist yet is locked by where it will be), so that a
// symlinked alias of a machine takes the same lock.
func lockKey(resource string) string {
	p := filepath.Clean(resource)
	var rest []string
	for {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{real}, rest...)...)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Clean(resource) // nothing resolves: the path as written
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// lockFile is the lock for a resource: a file in the lock directory named
// after the resource's key. The file outlives the run; only its flock is released
// (by the kernel too, when a run dies).
func lockFile(dir, resource string) string {
	sum := sha256.Sum256([]byte(resource))
	return filepath.Join(dir, filepath.Base(resource)+"-"+hex.EncodeToString(sum[:6])+".lock")
}

// defaultLockDir is where locks live unless ApplyOptions.LockDir says
// otherwise: /run/lock/rootfsctl for root (cleared at boot), else the
// user's runtime directory ($XDG_RUNTIME_DIR), else a per-user directory in
// the temporary directory.
func defaultLockDir() string {
	if os.Geteuid() == 0 {
		return "/run/lock/rootfsctl"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "rootfsctl-locks")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("rootfsctl-locks-%d", os.Geteuid()))
}

// openLockDir opens (creating it 0700) the lock directory, which often
// sits in a directory every user can write (/run/lock, /tmp): it must be a
// real directory, ours, and writable by nobody else, or another user could
// plant a symlink named like a lock file and have rootfsctl overwrite the
// file it points to.
func openLockDir(dir string) (int, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return -1, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open lock directory %s (it must be a directory, not a symlink): %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("lock directory %s belongs to uid %d with mode %04o; rootfsctl uses only a directory of its own user that no one else can write: remove it", dir, st.Uid, st.Mode&0o7777)
	}
	return fd, nil
}

// openLockFile opens (creating it 0600) a lock file in the lock
// directory, never through a symlink.
func openLockFile(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("lock file %s is not a regular file", name)
	}
	return f, nil
}

// acquireLocks locks every resource of the steps, in a fixed order so two
// runs cannot deadlock, waiting up to wait for each. The locks are released
// by the returned function (and by the kernel if the process dies).
//
// Waiting stops when ctx ends (the error is then ctx's).
func acquireLocks(ctx context.Context, log zerolog.Logger, p *Plan, ids []string, dir string, wait time.Duration) (func(), error) {
	keys, spelled := lockKeys(p, ids)
	var held []*os.File
	release := func() {
		for _, f := range held {
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN) // closing releases it anyway
			f.Close()
		}
	}
	if len(keys) == 0 {
		return release, nil
	}
	me, _ := json.Marshal(lockHolder{PID: os.Getpid(), Plan: p.File, Started: time.Now().UTC()})
	dirfd, err := openLockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	defer unix.Close(dirfd)
	for _, key := range keys {
		res := spelled[key]
		f, err := openLockFile(dirfd, filepath.Base(lockFile(dir, key)))
		if err != nil {
			err = fmt.Errorf("lock %s: %w", res, err)
		} else {
			err = flockWait(ctx, log, f, res, wait)
		}
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, f)
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt(append(me, '\n'), 0) // who holds it, for the next run's message
		}
	}
	return release, nil
}

// lockKeys are the sorted lock keys of the steps' resources, one per key
// however many spellings name it (two locks on one file from one process
// would wait for each other), and the first spelling of each, for messages.
func lockKeys(p *Plan, ids []string) ([]string, map[string]string) {
	spelled := map[string]string{}
	for _, id := range ids {
		if r, ok := p.byID[id].Impl.(Resource); ok {
			for _, res := range r.Resources() {
				if k := lockKey(res); spelled[k] == "" {
					spelled[k] = filepath.Clean(res)
				}
			}
		}
	}
	keys := make([]string, 0, len(spelled))
	for k := range spelled {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, spelled
}

// flockWait takes the lock on f, polling for up to wait while another run
// holds it. On any error f is closed; a lock still held when the wait ends
// is a *LockedError naming its holder.
func flockWait(ctx context.Context, log zerolog.Logger, f *os.File, res string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var err error
	for waiting := false; ; waiting = true {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil || !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
		if !waiting {
			log.Info().Str("phase", "lock-wait").Str("resource", res).Dur("waitMs", wait).Msg("another run holds the machine; waiting")
		}
		if serr := retry.Sleep(ctx, 100*time.Millisecond); serr != nil {
			f.Close()
			return serr
		}
	}
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		var h lockHolder
		b := make([]byte, 4096) // a holder's line is small; a longer file is not one
		n, _ := f.ReadAt(b, 0)
		_ = json.Unmarshal([]byte(strings.TrimSpace(string(b[:n]))), &h) // an unreadable holder still gets reported
		f.Close()
		return &LockedError{Resource: res, Holder: h}
	case err != nil:
		f.Close()
		return fmt.Errorf("lock %s: %w", res, err)
	}
	return nil
}
