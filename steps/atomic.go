package steps

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// TempPrefix starts the name of every temporary file rootfsctl creates next
// to a final path, so that leftovers of a crash are recognisable.
const TempPrefix = ".rootfsctl-tmp-"

// writeAtomic writes r to name inside root: a temporary file in the same
// directory, fsync, rename over the final name, fsync of the directory.
// Readers see the old file or the new one, never a part; on any error the
// old file is untouched and the temporary file is removed.
func writeAtomic(root *os.Root, name string, r io.Reader, mode fs.FileMode) (err error) {
	dir := path.Dir(name)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	tmp := path.Join(dir, TempPrefix+path.Base(name)+"-"+randomSuffix())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			// Best effort: the file may already be gone; the next run cleans up leftovers.
			_ = f.Close()
			_ = root.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	// fchmod, so the umask does not decide the final mode.
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err = root.Rename(tmp, name); err != nil {
		return fmt.Errorf("rename into place %s: %w", name, err)
	}
	return syncDir(root, dir)
}

// syncDir makes a rename in dir durable.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// isTempName reports whether a directory entry is a leftover temporary file.
func isTempName(name string) bool { return strings.HasPrefix(name, TempPrefix) }
