package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

// putSmall stores a small document at name (inside the cache directory)
// through a locked temporary file.
func (c *Cache) putSmall(name string, doc []byte) error {
	root, err := c.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := atomicfile.CreateTemp(root, "tmp", "doc-")
	if err != nil {
		return err
	}
	if _, err := f.Write(doc); err != nil {
		f.Abort()
		return err
	}
	if err := f.RenameTo(name); err != nil {
		f.Abort()
		return err
	}
	return f.Close() // after the rename: the lock covers the whole write
}

// Sum returns a remembered published checksum for key (a checksum URL and
// file name): released artifacts do not change, so the checksum document
// need not be fetched again.
func (c *Cache) Sum(key string) (string, bool) {
	b, err := readSmall(filepath.Join(c.dir, "sums", keyName(key)), 1<<10)
	if err != nil {
		return "", false
	}
	s := strings.TrimSpace(string(b))
	if len(s) != 64 {
		return "", false
	}
	return s, true
}

// ForgetSum drops a remembered checksum. Best effort: a missing one is
// fine.
func (c *Cache) ForgetSum(key string) {
	_ = os.Remove(filepath.Join(c.dir, "sums", keyName(key)))
}

// PutSum remembers a published checksum.
func (c *Cache) PutSum(key, sum string) error {
	return c.putSmall(path.Join("sums", keyName(key)), []byte(sum+"\n"))
}

func keyName(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Index returns a small document remembered under key (for example the
// list of an archive's members); the entries it names are checked by the
// caller. It is stored after the SHA-256 of its content: a document that
// does not match it (damaged, or written by an older version) is removed
// and reported missing, so the caller makes it again.
func (c *Cache) Index(key string) ([]byte, bool) {
	p := filepath.Join(c.dir, "sums", "index-"+keyName(key))
	b, err := readSmall(p, maxIndex)
	if err != nil {
		return nil, false
	}
	sum, doc, ok := bytes.Cut(b, []byte("\n"))
	h := sha256.Sum256(doc)
	if !ok || string(sum) != hex.EncodeToString(h[:]) {
		_ = os.Remove(p)
		return nil, false
	}
	return doc, true
}

// RemoveIndex forgets the document under key (its caller found it wrong).
func (c *Cache) RemoveIndex(key string) {
	_ = os.Remove(filepath.Join(c.dir, "sums", "index-"+keyName(key)))
}

// maxIndex bounds a remembered index document (an archive's member list).
const maxIndex = 1 << 20

// errTooLarge says a small document is larger than any rootfsctl writes.
var errTooLarge = errors.New("larger than any document the cache writes")

// readSmall reads a regular file of at most limit bytes, without following
// a symlink.
func readSmall(p string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w", p, errTooLarge)
	}
	return b, nil
}

// PutIndex remembers a small document under key, after its SHA-256.
func (c *Cache) PutIndex(key string, doc []byte) error {
	h := sha256.Sum256(doc)
	return c.putSmall(path.Join("sums", "index-"+keyName(key)), append([]byte(hex.EncodeToString(h[:])+"\n"), doc...))
}
