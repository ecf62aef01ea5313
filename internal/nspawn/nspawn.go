// Package nspawn renders and writes a machine's systemd-nspawn settings on
// the host: its .nspawn file and the drop-in of its systemd-nspawn@
// service, from embedded templates that say why each setting exists.
//
// The files are written whole (internal/atomicfile), each only when its
// content differs, and read within bounds, never through a fifo or device
// at their path. Several machines share the host's directories, so it
// removes only its own temporary files that no live run holds. It knows
// nothing of images or of what is inside a machine.
package nspawn

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.tmpl"))

// owner owns the temporary files written beside the settings (the step
// type that has always written them).
const owner = "workspace"

// Settings are a machine's nspawn settings and where they go.
type Settings struct {
	Machine      string
	BindReadOnly []string // host paths bound read-only
	HostDevices  []string // host device paths bound
	NspawnFile   string   // host path of the .nspawn file
	OverrideFile string   // host path of the service drop-in
}

// File is a rendered settings file.
type File struct {
	Path    string
	Content []byte
}

// Render renders the .nspawn file and the drop-in, in that order.
func (s Settings) Render() ([]File, error) {
	var out []File
	for _, f := range []struct{ path, tmpl string }{{s.NspawnFile, "machine.nspawn.tmpl"}, {s.OverrideFile, "override.conf.tmpl"}} {
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, f.tmpl, s); err != nil {
			return nil, fmt.Errorf("render %s: %w", f.tmpl, err)
		}
		out = append(out, File{Path: f.path, Content: b.Bytes()})
	}
	return out, nil
}

// Stale lists the files whose content on the host is not the rendered
// one, each with why ("is missing", "differs").
func Stale(files []File) ([]string, error) {
	var stale []string
	for _, f := range files {
		same, err := machine.HasContent(nil, f.Path, f.Content)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Path, err)
		}
		if !same {
			if _, err := os.Lstat(f.Path); errors.Is(err, fs.ErrNotExist) {
				stale = append(stale, f.Path+" is missing")
			} else {
				stale = append(stale, f.Path+" differs")
			}
		}
	}
	return stale, nil
}

// Write writes the files whose content differs, creating their
// directories.
func Write(ctx context.Context, files []File) error {
	for _, f := range files {
		same, err := machine.HasContent(nil, f.Path, f.Content)
		if err != nil {
			return fmt.Errorf("read %s: %w", f.Path, err)
		}
		if same {
			continue
		}
		zerolog.Ctx(ctx).Debug().Str("phase", "config").Str("file", f.Path).Msg("writing")
		if err := write(f, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// write writes a host file atomically, creating its directory.
func write(f File, mode fs.FileMode) error {
	root, err := atomicfile.OpenDir(f.Path)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := atomicfile.WriteFile(root, filepath.Base(f.Path), bytes.NewReader(f.Content), mode, owner); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return nil
}

// Tidy removes the temporary files an interrupted write left beside the
// settings (only those no live run holds).
func (s Settings) Tidy() {
	for _, file := range []string{s.NspawnFile, s.OverrideFile} {
		if root, err := os.OpenRoot(filepath.Dir(file)); err == nil {
			atomicfile.RemoveTemps(root, ".", owner)
			root.Close()
		}
	}
}
