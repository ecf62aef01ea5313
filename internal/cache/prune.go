package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

// CleanTemp removes temporary files that no running process is writing:
// what a killed run left behind. Best effort; it stops when ctx ends.
func (c *Cache) CleanTemp(ctx context.Context) {
	if c.checkDirs() != nil {
		return // refused: Prune and Create say why
	}
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		return // no cache yet: nothing to clean
	}
	defer root.Close()
	des, err := os.ReadDir(filepath.Join(c.dir, "tmp"))
	if err != nil {
		return
	}
	for _, d := range des {
		if ctx.Err() != nil {
			return
		}
		atomicfile.RemoveUnheld(root, path.Join("tmp", d.Name()))
	}
}

// Usage is the cache's size.
type Usage struct {
	Entries int
	Bytes   int64
}

var errPinned = errors.New("pinned by a live run")

// removeUnpinned removes an entry unless a live run pins it: it takes the
// exclusive flock a pin's shared one excludes, and removes while holding it.
func removeUnpinned(root *os.Root, e entryInfo) error {
	if e.dir {
		return root.RemoveAll(e.name)
	}
	f, err := root.OpenFile(e.name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return root.Remove(e.name) // a symlink or a vanished entry: not pinnable
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return errPinned
	}
	return root.Remove(e.name)
}

// Usage adds up the entries.
func (c *Cache) Usage() (Usage, error) {
	var u Usage
	entries, err := c.entries()
	for _, e := range entries {
		if !e.dir {
			u.Entries++
			u.Bytes += e.size
		}
	}
	return u, err
}

type entryInfo struct {
	name string // inside the cache directory
	size int64
	used time.Time
	dir  bool // not an entry at all: in the way of one
}

func (c *Cache) entries() ([]entryInfo, error) {
	if err := c.checkDirs(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(filepath.Join(c.dir, "sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // never written to
	}
	if err != nil {
		return nil, err
	}
	var out []entryInfo
	for _, d := range des {
		fi, err := d.Info()
		if err != nil {
			continue // removed meanwhile by a concurrent prune
		}
		out = append(out, entryInfo{name: path.Join("sha256", d.Name()), size: fi.Size(), used: fi.ModTime(), dir: fi.IsDir()})
	}
	return out, nil
}

// Prune removes the least recently used entries until the cache holds at
// most maxBytes, and the temporary files of runs that were killed (never
// those of a live run, however long it has been writing). maxBytes 0
// empties the cache.
//
// It stops, with what it removed so far and ctx's error, when ctx ends: a
// partly pruned cache is a valid cache.
func (c *Cache) Prune(ctx context.Context, maxBytes int64) (removed Usage, err error) {
	c.CleanTemp(ctx)
	entries, err := c.entries()
	if err != nil {
		return removed, err
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	root, err := os.OpenRoot(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return removed, nil // no cache yet: nothing to prune
	}
	if err != nil {
		return removed, err
	}
	defer root.Close()
	sort.Slice(entries, func(i, j int) bool { return entries[i].used.Before(entries[j].used) })
	for _, e := range entries {
		if total <= maxBytes && !e.dir {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		// Through the cache's root, never a path join: nothing outside it
		// can be removed, whatever is planted inside.
		if err := removeUnpinned(root, e); errors.Is(err, errPinned) {
			continue // a live run is about to install it
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("prune %s: %w", e.name, err)
		}
		total -= e.size
		removed.Entries++
		removed.Bytes += e.size
	}
	if maxBytes == 0 {
		sums, _ := os.ReadDir(filepath.Join(c.dir, "sums"))
		for _, s := range sums {
			_ = root.Remove(path.Join("sums", s.Name())) // best effort
		}
	}
	return removed, nil
}
