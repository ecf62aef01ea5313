package steps

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// openMachine opens the machine directory as an os.Root: every read and
// write inside it is confined, whatever symlinks the image put there.
func openMachine(dir string) (*os.Root, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open machine directory %s: %w", dir, err)
	}
	return root, nil
}

// Limits of what steps read from files they did not write themselves.
const (
	maxHostFile = 1 << 20  // a host file copied or compared (resolv.conf, nspawn settings)
	maxRecord   = 16 << 20 // an install or workspace record
)

// ErrTooLarge is returned when a file is larger than its reader's limit.
var ErrTooLarge = errors.New("file is larger than the limit")

// ErrNotRegular is returned when a file to read is not a regular file (a
// device, a fifo, a directory).
var ErrNotRegular = errors.New("not a regular file")

// readBounded reads the regular file name inside root, at most limit
// bytes. nil root reads a host path.
func readBounded(root *os.Root, name string, limit int64) ([]byte, error) {
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
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", name, ErrNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w (%d bytes)", name, ErrTooLarge, limit)
	}
	return b, nil
}
