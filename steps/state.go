package steps

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

// StateDir is where steps record, inside the machine's rootfs, what they
// installed. ensure-workspace removes any copy an image ships, so the
// records are always rootfsctl's own.
const StateDir = "var/lib/rootfsctl"

// installState is what a download step installed, so that its Check can
// tell "up to date" without executing anything from the rootfs (which may
// be built for another architecture).
type installState struct {
	Step    string      `json:"step"`
	Key     string      `json:"key"`     // digest of everything that decides the desired files
	Summary string      `json:"summary"` // what was installed, in words
	Files   []fileState `json:"files"`
}

type fileState struct {
	Path   string `json:"path"` // inside the rootfs
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtimeNs"`
	Source string `json:"source"` // redacted URL
	// Artifact identifies what the file came from (a digest of its URL and
	// pin), so an unchanged artifact can be kept when a sibling changes.
	Artifact string `json:"artifact"`
}

func statePath(step string) string { return path.Join(StateDir, "step-"+step+".json") }

// readState returns the step's record, or nil when there is none.
func readState(root *os.Root, step string) (*installState, error) {
	b, err := readBounded(root, statePath(step), maxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read install record: %w", err)
	}
	var st installState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil // a damaged record means "not installed"; apply rewrites it
	}
	return &st, nil
}

func writeState(root *os.Root, st *installState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(root, statePath(st.Step), bytes.NewReader(append(b, '\n')), 0o644, st.Step)
}

// stateKey digests the values that decide what a step installs.
func stateKey(v any) string {
	b, _ := json.Marshal(v) // plain structs of strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// verify reports the first recorded file that is missing or changed. Size
// and modification time are compared first; a file whose metadata moved is
// hashed, so a touched but identical file still counts as installed.
func (st *installState) verify(root *os.Root) (problem string, err error) {
	return verifyFiles(root, st.Files)
}

func verifyFiles(root *os.Root, files []fileState) (problem string, err error) {
	for _, f := range files {
		fi, err := root.Lstat(f.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return f.Path + " is missing", nil
		case err != nil:
			return "", fmt.Errorf("stat %s: %w", f.Path, err)
		case !fi.Mode().IsRegular():
			return f.Path + " is no longer a regular file", nil
		case fi.Mode().Perm()&0o111 == 0:
			return f.Path + " is not executable", nil
		case fi.Size() != f.Size:
			// Another size cannot be the recorded content: say so without
			// reading a file the machine may have made huge.
			return f.Path + " was modified", nil
		case fi.ModTime().UnixNano() == f.MTime:
			continue
		}
		sum, err := hashFile(root, f.Path, f.Size)
		if err != nil {
			return "", err
		}
		if sum != f.SHA256 {
			return f.Path + " was modified", nil
		}
	}
	return "", nil
}

// hashFile hashes at most size+1 bytes of name (a file that grew since it
// was stat'ed cannot match a digest of size bytes anyway).
func hashFile(root *os.Root, name string, size int64) (string, error) {
	f, err := root.Open(name)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, size+1)); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recordFile describes an installed file for the install record.
func recordFile(root *os.Root, name, sum, source string) (fileState, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return fileState{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return fileState{Path: name, SHA256: sum, Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Source: source}, nil
}
