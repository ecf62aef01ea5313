package machine

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

// Files is the content files inside a machine must have, by their path in
// it. They are written mode 0644, each only when its content differs.
type Files map[string][]byte

// Stale lists, in path order, the files whose content is not the wanted
// one, each with why ("is missing", "differs", ...).
func (files Files) Stale(root *os.Root) []string {
	var stale []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fi, err := root.Lstat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			stale = append(stale, name+" is missing")
			continue
		case err == nil && !fi.Mode().IsRegular():
			stale = append(stale, name+" is not a regular file")
			continue
		}
		// Read no more than the wanted content and one byte: the image's
		// file may be of any size.
		same, err := HasContent(root, name, files[name])
		switch {
		case err != nil:
			// An escaping symlink in the image lands here: report, do not follow.
			stale = append(stale, fmt.Sprintf("%s cannot be read inside the machine (%v)", name, err))
		case !same:
			stale = append(stale, name+" differs")
		}
	}
	return stale
}

// Write writes every file whose content differs, through a temporary file
// of owner's (a step id) beside it.
func (files Files) Write(root *os.Root, owner string) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if fi, err := root.Lstat(name); err == nil && fi.Mode().IsRegular() {
			if same, err := HasContent(root, name, files[name]); err == nil && same {
				continue
			}
		}
		atomicfile.RemoveTemps(root, path.Dir(name), owner)
		if err := atomicfile.WriteFile(root, name, bytes.NewReader(files[name]), 0o644, owner); err != nil {
			return fmt.Errorf("write %s in the machine: %w", name, err)
		}
	}
	return nil
}

// Tidy removes the temporary files an interrupted write of owner's left
// beside the files (only those no live run holds).
func (files Files) Tidy(root *os.Root, owner string) {
	dirs := map[string]bool{}
	for name := range files {
		dirs[path.Dir(name)] = true
	}
	for d := range dirs {
		atomicfile.RemoveTemps(root, d, owner)
	}
}
