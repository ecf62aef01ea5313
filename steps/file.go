package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

const fileDoc = `Writes a file on the host with exactly the given content and mode.
Up to date when the file already has that content and mode. The write is
atomic: a temporary file in the same directory, fsync, then rename, so a
reader never sees a partial file. Missing parent directories are created
with mode 0755. It replaces a regular file or a symlink (the link itself,
never its target), and refuses anything else at the path: a directory, a
device node, a fifo or a socket is not a file to overwrite.`

// FileParams are the parameters of the file step.
type FileParams struct {
	Path    engine.AbsPath  `yaml:"path" jsonschema:"required" jsonschema_description:"Absolute path of the file."`
	Content string          `yaml:"content" jsonschema_description:"The file's content, exactly (use a YAML block scalar for several lines)."`
	Mode    engine.FileMode `yaml:"mode" jsonschema_description:"Permission bits, in octal."`
}

var fileDefaults = FileParams{Mode: 0o644}

type fileStep struct {
	p    FileParams
	path string
}

func newFile(_ string, p *FileParams) (engine.Step, error) {
	return &fileStep{p: *p, path: p.Path.String()}, nil
}

func (s *fileStep) Check(_ context.Context) (engine.Change, error) {
	want := s.p.Mode.Perm()
	fi, err := os.Lstat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return engine.NeedsChange("file does not exist"), nil
	case err != nil:
		return engine.Change{}, fmt.Errorf("stat %s: %w", s.path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return engine.NeedsChange(fmt.Sprintf("%s is a symlink; the link will be replaced by a file", s.path)), nil
	case !fi.Mode().IsRegular():
		return engine.Change{}, errNotAFile(s.path, fi.Mode())
	}
	same, err := machine.HasContent(nil, s.path, []byte(s.p.Content))
	if err != nil {
		return engine.Change{}, fmt.Errorf("read %s: %w", s.path, err)
	}
	if !same {
		return engine.NeedsChange("content differs"), nil
	}
	if got := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky); got != want {
		return engine.NeedsChange(fmt.Sprintf("mode is %s, want %s", got, want)), nil
	}
	return engine.UpToDate("content and mode match"), nil
}

func (s *fileStep) Apply(_ context.Context) error {
	root, err := atomicfile.OpenDir(s.path)
	if err != nil {
		return err
	}
	defer root.Close()
	// Checked again here, through the directory's root: the path may have
	// changed since Check.
	if fi, err := root.Lstat(filepath.Base(s.path)); err == nil && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
		return errNotAFile(s.path, fi.Mode())
	}
	atomicfile.RemoveTemps(root, ".", "file")
	if err := atomicfile.WriteFile(root, filepath.Base(s.path), bytes.NewReader([]byte(s.p.Content)), s.p.Mode.Perm(), "file"); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	return nil
}

// errNotAFile refuses to replace what is not a file.
func errNotAFile(path string, m fs.FileMode) error {
	return engine.Permanent(fmt.Errorf("%s is a %s; a file step replaces only a regular file or a symlink, so nothing was changed", path, fileKind(m)))
}

// Tidy removes temporary files an interrupted write left beside the file
// (only those no live run holds: internal/atomicfile keeps them locked while in use).
func (s *fileStep) Tidy(context.Context) error {
	root, err := os.OpenRoot(filepath.Dir(s.path))
	if err != nil {
		return nil // no directory yet: nothing to tidy
	}
	defer root.Close()
	atomicfile.RemoveTemps(root, ".", "file")
	return nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "regular file"
}
