package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Resource is implemented by steps that change something other runs must
// not change at the same time, such as a machine directory. Before applying,
// Run takes an exclusive lock per resource.
type Resource interface {
	Resources() []string // absolute paths
}

// LockHolder describes the run holding a lock, as written in its lock file.
type LockHolder struct {
	PID     int       `json:"pid"`
	Plan    string    `json:"plan"`
	Started time.Time `json:"started"`
}

// LockedError says a resource is being changed by another run.
type LockedError struct {
	Resource string
	Holder   LockHolder
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

// DefaultLockDir is where locks live unless RunOptions.LockDir says
// otherwise: /run/lock/rootfsctl for root (cleared at boot), a per-user
// directory in the temporary directory for others.
func DefaultLockDir() string {
	if os.Geteuid() == 0 {
		return "/run/lock/rootfsctl"
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("rootfsctl-locks-%d", os.Geteuid()))
}

// acquireLocks locks every resource of the steps, in a fixed order so two
// runs cannot deadlock, waiting up to wait for each. The locks are released
// by the returned function (and by the kernel if the process dies).
//
// Waiting stops when ctx ends (the error is then ctx's).
func acquireLocks(ctx context.Context, log zerolog.Logger, p *Plan, ids []string, dir string, wait time.Duration) (func(), error) {
	// One lock per key, however many spellings name it: two locks on one
	// file from one process would wait for each other.
	spelled := map[string]string{} // key -> the first spelling, for messages
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
	var held []*os.File
	release := func() {
		for _, f := range held {
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN) // closing releases it anyway
			f.Close()
		}
	}
	me, _ := json.Marshal(LockHolder{PID: os.Getpid(), Plan: p.File, Started: time.Now().UTC()})
	for _, key := range keys {
		res := spelled[key]
		if err := os.MkdirAll(dir, 0o755); err != nil {
			release()
			return nil, fmt.Errorf("lock %s: %w", res, err)
		}
		f, err := os.OpenFile(lockFile(dir, key), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			release()
			return nil, fmt.Errorf("lock %s: %w", res, err)
		}
		deadline := time.Now().Add(wait)
		for waiting := false; ; {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == nil || !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
				break
			}
			if !waiting {
				waiting = true
				log.Info().Str("phase", "lock-wait").Str("resource", res).Dur("waitMs", wait).Msg("another run holds the machine; waiting")
			}
			if serr := sleepCtx(ctx, 100*time.Millisecond); serr != nil {
				f.Close()
				release()
				return nil, serr
			}
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			var h LockHolder
			b := make([]byte, 4096) // a holder's line is small; a longer file is not one
			n, _ := f.ReadAt(b, 0)
			b = b[:n]
			_ = json.Unmarshal([]byte(strings.TrimSpace(string(b))), &h) // an unreadable holder still gets reported
			f.Close()
			release()
			return nil, &LockedError{Resource: res, Holder: h}
		}
		if err != nil {
			f.Close()
			release()
			return nil, fmt.Errorf("lock %s: %w", res, err)
		}
		held = append(held, f)
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt(append(me, '\n'), 0) // who holds it, for the next run's message
		}
	}
	return release, nil
}
