package machine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

// Record says which image a machine's rootfs was built from. Build writes
// it inside the rootfs, last, so a rootfs without one is not rootfsctl's
// (or not complete).
type Record struct {
	Image    string    `json:"image"`    // the reference, as the plan wrote it
	Digest   string    `json:"digest"`   // of the platform's image manifest
	Platform string    `json:"platform"` // as the image's index names it
	Unpacked time.Time `json:"unpacked"`
}

const recordPath = StateDir + "/workspace.json"

// ReadRecord returns the record of the rootfs at dir, which is not empty;
// without a readable one it says why instead.
func ReadRecord(dir string) (*Record, string, error) {
	root, err := Open(dir)
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	b, err := ReadFile(root, recordPath, MaxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "machine directory holds a root filesystem rootfsctl did not unpack", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read workspace record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, "machine directory has a damaged workspace record", nil
	}
	return &rec, "", nil
}

// writeRecord replaces the state directory of a new rootfs with one that
// holds only rec: the state directory is rootfsctl's, an image must not
// pre-seed records.
func writeRecord(root *os.Root, rec Record) error {
	if err := root.RemoveAll(StateDir); err != nil {
		return fmt.Errorf("clear %s: %w", StateDir, err)
	}
	if err := root.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", StateDir, err)
	}
	b, _ := json.MarshalIndent(rec, "", "  ") // strings and a time: cannot fail
	return atomicfile.WriteFile(root, recordPath, bytes.NewReader(append(b, '\n')), 0o644, "workspace")
}

// TidyRecord removes the temporary files an interrupted write of the
// record left (only those no live run holds).
func TidyRecord(root *os.Root) { atomicfile.RemoveTemps(root, StateDir, "workspace") }
