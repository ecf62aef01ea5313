package steps

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

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
	b, err := machine.ReadFile(nil, s.resolvConf, machine.MaxHostFile)
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
	return checkMachine(s.machineDir, func(root *os.Root) (engine.Change, error) {
		stale := machine.Files{machineResolv: want}.Stale(root)
		if target, err := root.Readlink(resolvedUnit); err != nil || target != maskTarget {
			stale = append(stale, "systemd-resolved is not masked")
		}
		if len(stale) > 0 {
			return engine.NeedsChange(strings.Join(stale, "; ")), nil
		}
		return engine.UpToDate("systemd-resolved masked; resolv.conf matches the host's"), nil
	})
}

func (s *resolvedStep) Apply(context.Context) error {
	want, err := s.hostResolv()
	if err != nil {
		return err
	}
	root, err := machine.Open(s.machineDir)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := (machine.Files{machineResolv: want}).Write(root, s.id); err != nil {
		return err
	}
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
func (s *resolvedStep) Resources() []string { return []string{s.machineDir} }

// Tidy removes temporary files an interrupted run left next to the files.
func (s *resolvedStep) Tidy(context.Context) error {
	if root, err := machine.Open(s.machineDir); err == nil {
		machine.Files{machineResolv: nil, resolvedUnit: nil}.Tidy(root, s.id)
		root.Close()
	}
	return nil
}
