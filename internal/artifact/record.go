package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

// record is what a download step installed, so that its Check can tell
// "up to date" without executing anything from the rootfs (which may be
// built for another architecture).
type record struct {
	Step    string `json:"step"`
	Key     string `json:"key"`     // digest of everything that decides the desired files
	Summary string `json:"summary"` // what was installed, in words
	Files   []file `json:"files"`
}

// file is one installed file in a record.
type file struct {
	Path   string `json:"path"` // inside the rootfs
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtimeNs"`
	Source string `json:"source"` // redacted URL
	// Artifact identifies what the file came from (a digest of its URL and
	// pin), so an unchanged artifact can be kept when a sibling changes.
	Artifact string `json:"artifact"`
}

func recordPath(step string) string { return path.Join(machine.StateDir, "step-"+step+".json") }

// readRecord returns the step's record, or nil when there is none.
func readRecord(root *os.Root, step string) (*record, error) {
	b, err := machine.ReadFile(root, recordPath(step), machine.MaxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read install record: %w", err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, nil // a damaged record means "not installed"; apply rewrites it
	}
	return &r, nil
}

func writeRecord(root *os.Root, r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(root, recordPath(r.Step), bytes.NewReader(append(b, '\n')), 0o644, r.Step)
}

// verify reports the first recorded file that is missing or changed. Size
// and modification time are compared first; a file whose metadata moved is
// hashed, so a touched but identical file still counts as installed.
func verify(root *os.Root, files []file) (problem string, err error) {
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

// recordFile describes an installed file for the record.
func recordFile(root *os.Root, name, sum, source, artifact string) (file, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return file{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return file{Path: name, SHA256: sum, Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Source: source, Artifact: artifact}, nil
}

// removeObsolete removes the files this step installed before and does not
// install now (a binary dropped from the plan, a member a new release no
// longer ships, an old installDir), so the machine is what a fresh
// provisioning with this plan makes. Only files still exactly as installed
// are removed; one changed since is left, and said so. It runs before the
// new record is written: a crash in between is repaired by the next apply.
func removeObsolete(ctx context.Context, root *os.Root, installed []file, keep map[string]bool) {
	log := zerolog.Ctx(ctx)
	for _, f := range installed {
		if keep[f.Path] {
			continue
		}
		if problem, err := verify(root, []file{f}); err != nil || problem != "" {
			if problem != "" && !strings.HasSuffix(problem, " is missing") {
				log.Warn().Str("path", f.Path).Str("why", problem).Msg("no longer installed by this step, but changed since: left in place")
			}
			continue
		}
		if err := root.Remove(f.Path); err != nil {
			log.Warn().Err(err).Str("path", f.Path).Msg("could not remove a file this step no longer installs")
			continue
		}
		log.Info().Str("path", f.Path).Msg("removed: no longer installed by this step")
	}
}
