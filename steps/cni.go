package steps

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
)

const cniDoc = `Installs the CNI plugins into <machineDir>/<installDir> (mode 0755) from
<baseURL>/v<v>/cni-plugins-linux-<arch>-v<v>.tgz, verified against <tgz>.sha256.
Every executable at the top of the archive is installed; documents (LICENSE,
README) are not. The plugins listed in require must be in the archive, or
nothing is installed.`

// CNIParams are the parameters of download-cni.
type CNIParams struct {
	MachineDir string   `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Version    string   `yaml:"version" jsonschema:"default=1.5.1" jsonschema_description:"CNI plugins version, without a leading v."`
	Arch       string   `yaml:"arch" jsonschema:"default=${host.arch}" jsonschema_description:"Architecture of the plugins (Go names: amd64, arm64)."`
	BaseURL    string   `yaml:"baseURL" jsonschema:"default=https://github.com/containernetworking/plugins/releases/download" jsonschema_description:"Replaces the upstream prefix; the release layout is kept."`
	URL        string   `yaml:"url" jsonschema_description:"Whole-URL template with {version}, {arch} and {os}; checksum at <url>.sha256."`
	SHA256     string   `yaml:"sha256" jsonschema_description:"Pinned SHA-256 of the tarball."`
	Require    []string `yaml:"require" jsonschema:"default=[bridge\\, host-local\\, loopback]" jsonschema_description:"Plugins that must be in the archive."`
	InstallDir string   `yaml:"installDir" jsonschema:"default=opt/cni/bin" jsonschema_description:"Directory inside the machine."`
}

func (p *CNIParams) Validate() []engine.FieldError {
	errs := machinePaths(p.MachineDir, p.InstallDir, p.Arch)
	s := sourceFor(p.Version, p.BaseURL, p.URL, p.SHA256)
	for i, r := range p.Require {
		if !binaryPattern.MatchString(r) {
			errs = append(errs, engine.FieldError{Path: fmt.Sprintf("require[%d]", i), Message: fmt.Sprintf("%q is not a plugin name", r)})
		}
	}
	return append(errs, s.validate("", true, "version", "arch", "os")...)
}

func newCNI(id string, p *CNIParams, o *Options) (engine.Step, error) {
	d := &downloads{id: id, machineDir: filepath.Clean(p.MachineDir), installDir: path.Clean(p.InstallDir), opts: o}
	tgz := fmt.Sprintf("cni-plugins-linux-%s-v%s.tgz", p.Arch, p.Version)
	a := artifact{Name: fmt.Sprintf("cni-plugins %s linux/%s", p.Version, p.Arch), SumFile: tgz, Pinned: p.SHA256}
	a.URL = locate(p.URL, linuxVals(p.Version, p.Arch), p.BaseURL, "v"+p.Version+"/"+tgz)
	a.SumURL = a.URL + ".sha256"
	installDir := d.installDir
	d.jobs = append(d.jobs, job{art: a, label: "cni-plugins", check: "cni-artifacts", require: append([]string{}, p.Require...), executablesOnly: true, selection: "top-level executables",
		pick: func(m string) (string, bool) {
			return path.Join(installDir, m), !strings.Contains(m, "/") && m != "."
		}})
	d.summary = fmt.Sprintf("cni-plugins %s linux/%s", p.Version, p.Arch)
	d.key = stateKey(*p)
	return d, nil
}
