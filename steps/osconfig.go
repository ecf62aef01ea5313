package steps

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"text/template"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

const osDoc = `Writes OS configuration into the machine so that kubelet and container
networking work inside systemd-nspawn (all mode 0644, through the machine's
os.Root): etc/tmpfiles.d/kmsg.conf (/dev/kmsg for kubelet),
etc/modules-load.d/kubernetes.conf (modules), etc/apt/sources.list (suite,
components and the mirror for the architecture; suite, -updates, -backports,
-security), and etc/hostname. Up to date when every file already has exactly
that content.`

//go:embed templates/*.tmpl
var templateFS embed.FS

// templates render the files configure-os writes; each says why its
// settings exist.
var templates = template.Must(template.ParseFS(templateFS, "templates/*.tmpl"))

// OSParams are the parameters of configure-os.
type OSParams struct {
	MachineDir MachineDir `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Hostname   Hostname   `yaml:"hostname" jsonschema_description:"Written to etc/hostname."`
	Arch       Arch       `yaml:"arch" jsonschema_description:"Architecture whose apt mirror is used (Go names: amd64, arm64)."`
	Modules    []Word     `yaml:"modules" jsonschema_description:"Kernel modules listed in etc/modules-load.d/kubernetes.conf."`
	Apt        AptParams  `yaml:"apt" jsonschema_description:"The apt sources written to etc/apt/sources.list."`
}

// AptParams describe the machine's apt sources.
type AptParams struct {
	Suite      Word           `yaml:"suite" jsonschema_description:"Distribution suite (noble, jammy, bookworm)."`
	Components []Word         `yaml:"components" jsonschema_description:"Archive components."`
	Mirrors    map[string]URL `yaml:"mirrors" jsonschema_description:"Mirror URL per architecture; an architecture without one is an error."`
	Skip       bool           `yaml:"skip" jsonschema_description:"Leave etc/apt/sources.list alone."`
}

var osDefaults = OSParams{
	Hostname: hostHostname,
	Arch:     hostArch,
	Modules:  []Word{"overlay", "br_netfilter"},
	Apt: AptParams{
		Suite:      "noble",
		Components: []Word{"main", "restricted", "universe", "multiverse"},
		Mirrors:    map[string]URL{"amd64": "http://archive.ubuntu.com/ubuntu/", "arm64": "http://ports.ubuntu.com/ubuntu-ports/"},
	},
}

// problems are the findings no single field shows.
func (p *OSParams) problems() engine.FieldErrors {
	if p.Apt.Skip {
		return nil
	}
	if _, ok := p.Apt.Mirrors[string(p.Arch)]; !ok {
		have := make([]string, 0, len(p.Apt.Mirrors))
		for a := range p.Apt.Mirrors {
			have = append(have, a)
		}
		sort.Strings(have)
		return engine.FieldErrors{{Path: "apt.mirrors", Uses: []string{"arch"},
			Message: fmt.Sprintf("no mirror for architecture %s (mirrors are set for: %s)", p.Arch, strings.Join(have, ", "))}}
	}
	return nil
}

type osConfig struct {
	id         string
	machineDir string
	files      machine.Files
}

func newOSConfig(id string, p *OSParams, _ *Options) (engine.Step, error) {
	if errs := p.problems(); len(errs) > 0 {
		return nil, errs
	}
	s := &osConfig{id: id, machineDir: p.MachineDir.String(), files: machine.Files{}}
	render := func(file, tmpl string, data any) error {
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, tmpl, data); err != nil {
			return fmt.Errorf("render %s: %w", tmpl, err)
		}
		s.files[file] = b.Bytes()
		return nil
	}
	if err := render("etc/tmpfiles.d/kmsg.conf", "kmsg.conf.tmpl", nil); err != nil {
		return nil, err
	}
	if err := render("etc/modules-load.d/kubernetes.conf", "modules.conf.tmpl", texts(p.Modules)); err != nil {
		return nil, err
	}
	if !p.Apt.Skip {
		su := string(p.Apt.Suite)
		data := map[string]any{
			"Suite": su, "Arch": p.Arch, "Mirror": p.Apt.Mirrors[string(p.Arch)],
			"Components": strings.Join(texts(p.Apt.Components), " "),
			"Pockets":    []string{su, su + "-updates", su + "-backports", su + "-security"},
		}
		if err := render("etc/apt/sources.list", "sources.list.tmpl", data); err != nil {
			return nil, err
		}
	}
	s.files["etc/hostname"] = []byte(string(p.Hostname) + "\n")
	return s, nil
}

func (s *osConfig) Check(context.Context) (engine.Change, error) {
	return checkMachine(s.machineDir, func(root *os.Root) (engine.Change, error) {
		if stale := s.files.Stale(root); len(stale) > 0 {
			return engine.NeedsChange(strings.Join(stale, "; ")), nil
		}
		return engine.UpToDate(fmt.Sprintf("%d files current", len(s.files))), nil
	})
}

func (s *osConfig) Apply(ctx context.Context) error {
	zerolog.Ctx(ctx).Debug().Str("phase", "config").Int("files", len(s.files)).Msg("writing")
	root, err := machine.Open(s.machineDir)
	if err != nil {
		return err
	}
	defer root.Close()
	return s.files.Write(root, s.id)
}

// Resources: the machine directory.
func (s *osConfig) Resources() []string { return []string{s.machineDir} }

// Tidy removes temporary files an interrupted run left next to the files.
func (s *osConfig) Tidy(context.Context) error {
	if root, err := machine.Open(s.machineDir); err == nil {
		s.files.Tidy(root, s.id)
		root.Close()
	}
	return nil
}

// checkMachine runs check on the machine's root; a machine directory that
// does not exist yet (its workspace step has not run) needs a change.
func checkMachine(dir string, check func(root *os.Root) (engine.Change, error)) (engine.Change, error) {
	root, err := machine.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return engine.NeedsChange("machine directory does not exist yet"), nil
	}
	if err != nil {
		return engine.Change{}, err
	}
	defer root.Close()
	return check(root)
}
