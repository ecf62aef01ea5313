package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

const osDoc = `Writes OS configuration into the machine so that kubelet and container
networking work inside systemd-nspawn (all mode 0644, through the machine's
os.Root): etc/tmpfiles.d/kmsg.conf (/dev/kmsg for kubelet),
etc/modules-load.d/kubernetes.conf (modules), etc/apt/sources.list (suite,
components and the mirror for the architecture; suite, -updates, -backports,
-security), and etc/hostname. Up to date when every file already has exactly
that content.`

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
	files      map[string][]byte // path inside the machine -> content
}

func newOSConfig(id string, p *OSParams, _ *Options) (engine.Step, error) {
	if errs := p.problems(); len(errs) > 0 {
		return nil, errs
	}
	s := &osConfig{id: id, machineDir: p.MachineDir.String(), files: map[string][]byte{}}
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
	return checkFiles(s.machineDir, s.files)
}

func (s *osConfig) Apply(ctx context.Context) error {
	zerolog.Ctx(ctx).Debug().Str("phase", "config").Int("files", len(s.files)).Msg("writing")
	return applyFiles(s.machineDir, s.files, s.id)
}

// checkFiles compares files inside the machine with the wanted content.
func checkFiles(machineDir string, files map[string][]byte) (engine.Change, error) {
	root, err := openMachine(machineDir)
	if errors.Is(err, fs.ErrNotExist) {
		return engine.NeedsChange("machine directory does not exist yet"), nil
	}
	if err != nil {
		return engine.Change{}, err
	}
	defer root.Close()
	var stale []string
	for _, name := range sortedKeys(files) {
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
		same, err := hasContent(root, name, files[name])
		switch {
		case err != nil:
			// An escaping symlink in the image lands here: report, do not follow.
			stale = append(stale, fmt.Sprintf("%s cannot be read inside the machine (%v)", name, err))
		case !same:
			stale = append(stale, name+" differs")
		}
	}
	if len(stale) > 0 {
		return engine.NeedsChange(strings.Join(stale, "; ")), nil
	}
	return engine.UpToDate(fmt.Sprintf("%d files current", len(files))), nil
}

func applyFiles(machineDir string, files map[string][]byte, owner string) error {
	root, err := openMachine(machineDir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, name := range sortedKeys(files) {
		if fi, err := root.Lstat(name); err == nil && fi.Mode().IsRegular() {
			if same, err := hasContent(root, name, files[name]); err == nil && same {
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

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const resolvedDoc = `Masks systemd-resolved inside the machine and gives it a static
resolv.conf. The image's systemd-resolved would start on boot and replace
/etc/resolv.conf with "No DNS servers known." since it has no upstream
inside the container; with VirtualEthernet=no the machine shares the host's
network, so the host's resolver configuration works as it is.
etc/systemd/system/systemd-resolved.service becomes a symlink to /dev/null
(replacing whatever was there), and the host's resolvConf (symlinks followed
on the host side only) is copied to etc/resolv.conf as a regular file.`

// ResolvedParams are the parameters of disable-resolved.
type ResolvedParams struct {
	MachineDir MachineDir     `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	ResolvConf engine.AbsPath `yaml:"resolvConf" jsonschema_description:"The host file copied into the machine."`
}

var resolvedDefaults = ResolvedParams{ResolvConf: "/etc/resolv.conf"}

const (
	resolvedUnit  = "etc/systemd/system/systemd-resolved.service"
	machineResolv = "etc/resolv.conf"
	maskTarget    = "/dev/null"
)

type resolvedStep struct {
	id         string
	machineDir string
	resolvConf string // on the host
}

func newResolved(id string, p *ResolvedParams, _ *Options) (engine.Step, error) {
	return &resolvedStep{id: id, machineDir: p.MachineDir.String(), resolvConf: p.ResolvConf.String()}, nil
}

// hostResolv reads the host's resolv.conf (symlinks followed on the host):
// a regular file of bounded size, never a device or a fifo.
func (s *resolvedStep) hostResolv() ([]byte, error) {
	b, err := readBounded(nil, s.resolvConf, maxHostFile)
	if err != nil {
		return nil, fmt.Errorf("read host %s: %w", s.resolvConf, err)
	}
	return b, nil
}

func (s *resolvedStep) Check(context.Context) (engine.Change, error) {
	want, err := s.hostResolv()
	if err != nil {
		return engine.Change{}, err
	}
	ch, err := checkFiles(s.machineDir, map[string][]byte{machineResolv: want})
	if err != nil || ch.Reason == "machine directory does not exist yet" {
		return ch, err
	}
	var reasons []string
	if ch.Needed {
		reasons = append(reasons, ch.Reason)
	}
	root, err := openMachine(s.machineDir)
	if err != nil {
		return engine.Change{}, err
	}
	defer root.Close()
	if target, err := root.Readlink(resolvedUnit); err != nil || target != maskTarget {
		reasons = append(reasons, "systemd-resolved is not masked")
	}
	if len(reasons) > 0 {
		return engine.NeedsChange(strings.Join(reasons, "; ")), nil
	}
	return engine.UpToDate("systemd-resolved masked; resolv.conf matches the host's"), nil
}

func (s *resolvedStep) Apply(context.Context) error {
	want, err := s.hostResolv()
	if err != nil {
		return err
	}
	if err := applyFiles(s.machineDir, map[string][]byte{machineResolv: want}, s.id); err != nil {
		return err
	}
	root, err := openMachine(s.machineDir)
	if err != nil {
		return err
	}
	defer root.Close()
	if target, err := root.Readlink(resolvedUnit); err == nil && target == maskTarget {
		return nil
	}
	dir := path.Dir(resolvedUnit)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s in the machine: %w", dir, err)
	}
	if fi, err := root.Lstat(resolvedUnit); err == nil && fi.IsDir() {
		return engine.Permanent(fmt.Errorf("mask systemd-resolved: %s is a directory in the machine", resolvedUnit))
	}
	// A symlink made beside it and renamed over it: the unit is masked or
	// not, never missing.
	if err := atomicfile.Symlink(root, maskTarget, resolvedUnit, s.id); err != nil {
		return fmt.Errorf("mask systemd-resolved: %w", err)
	}
	return nil
}

// Resources: the machine directory.
func (s *osConfig) Resources() []string     { return []string{s.machineDir} }
func (s *resolvedStep) Resources() []string { return []string{s.machineDir} }

// Tidy removes temporary files an interrupted run left next to the files.
func (s *osConfig) Tidy(context.Context) error {
	tidyMachine(s.machineDir, s.id, s.files)
	return nil
}

func (s *resolvedStep) Tidy(context.Context) error {
	tidyMachine(s.machineDir, s.id, map[string][]byte{machineResolv: nil, resolvedUnit: nil})
	return nil
}

func tidyMachine(machineDir, owner string, files map[string][]byte) {
	root, err := openMachine(machineDir)
	if err != nil {
		return
	}
	defer root.Close()
	dirs := map[string]bool{}
	for name := range files {
		dirs[path.Dir(name)] = true
	}
	for d := range dirs {
		atomicfile.RemoveTemps(root, d, owner)
	}
}
