// Package machine is rootfsctl's access to a machine directory: it opens
// one confined (an os.Root, so no symlink an image put there can lead a
// write outside), reads the files a machine or the host holds within
// bounds, writes configuration files into it, and builds its root
// filesystem beside it to rename it into place whole.
//
// A machine's content is untrusted input: nothing here reads a file
// without a limit or follows a fifo or device, and nothing writes into a
// machine through a plain path join. It knows nothing of steps or plans.
package machine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// StateDir is where rootfsctl records, inside a machine's rootfs, what it
// built and installed there. Build removes any copy an image ships, so
// the records are always rootfsctl's own.
const StateDir = "var/lib/rootfsctl"

// Limits of what is read from files rootfsctl did not write itself.
const (
	MaxHostFile = 1 << 20  // a host file copied or compared (resolv.conf, nspawn settings)
	MaxRecord   = 16 << 20 // an install or workspace record
)

// ErrTooLarge is returned when a file is larger than its reader's limit.
var ErrTooLarge = errors.New("larger than the limit")

// ErrNotRegular is returned when a file to read is not a regular file (a
// device, a fifo, a directory).
var ErrNotRegular = errors.New("not a regular file")

// Open opens the machine directory as an os.Root: every read and write
// inside it is confined, whatever symlinks the image put there.
//
// A machine directory that does not exist is a permanent error matching
// fs.ErrNotExist: what writes into a machine runs after what makes it, so
// a retry would not help; the message says how to fix the plan.
func Open(dir string) (*os.Root, error) {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, retry.Permanent(fmt.Errorf("machine directory %s does not exist: the step that makes it (ensure-workspace) must come first, in needs: %w", dir, fs.ErrNotExist))
	}
	if err != nil {
		return nil, fmt.Errorf("open machine directory %s: %w", dir, err)
	}
	return root, nil
}

// OpenRegular opens name inside root (a host path when root is nil) for
// reading, and only if it is a regular file.
func OpenRegular(root *os.Root, name string) (*os.File, error) {
	var f *os.File
	var err error
	// O_NONBLOCK: opening a fifo must not wait for a writer.
	if root != nil {
		f, err = root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	} else {
		f, err = os.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, ErrNotRegular
	}
	return f, nil
}

// ReadFile reads the regular file name inside root (a host path when root
// is nil), at most limit bytes.
func ReadFile(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := OpenRegular(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// HasContent reports whether the regular file name inside root (a host
// path when root is nil) holds exactly want, reading at most one byte more
// than want. A missing file is (false, nil); one that is not a regular
// file is ErrNotRegular.
func HasContent(root *os.Root, name string, want []byte) (bool, error) {
	f, err := OpenRegular(root, name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	got, err := io.ReadAll(io.LimitReader(f, int64(len(want))+1))
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, want), nil
}
