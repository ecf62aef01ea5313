package steps

import (
	"fmt"
	"path"
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
	MachineDir MachineDir     `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Version    Version        `yaml:"version" jsonschema:"default=1.5.1" jsonschema_description:"CNI plugins version, without a leading v."`
	Arch       Arch           `yaml:"arch" jsonschema:"default=${host.arch}" jsonschema_description:"Architecture of the plugins (Go names: amd64, arm64)."`
	BaseURL    URL            `yaml:"baseURL" jsonschema_description:"Replaces the upstream prefix (default https://github.com/containernetworking/plugins/releases/download); the release layout is kept."`
	URL        URLTemplate    `yaml:"url" jsonschema_description:"Whole-URL template with {version}, {arch} and {os}; checksum at <url>.sha256. Not with baseURL."`
	SHA256     Digest         `yaml:"sha256" jsonschema_description:"Pinned SHA-256 of the tarball."`
	Require    []Name         `yaml:"require" jsonschema:"default=[bridge\\, host-local\\, loopback]" jsonschema_description:"Plugins that must be in the archive."`
	InstallDir engine.RelPath `yaml:"installDir" jsonschema:"default=opt/cni/bin" jsonschema_description:"Directory inside the machine."`
}

const cniUpstream = "https://github.com/containernetworking/plugins/releases/download"

func (p *CNIParams) Validate() []engine.FieldError {
	return sourceProblems("", p.URL, p.BaseURL, "version", "arch", "os")
}

func newCNI(id string, p *CNIParams, o *Options) (engine.Step, error) {
	d := &downloads{id: id, machineDir: p.MachineDir.String(), installDir: p.InstallDir.String(), opts: o}
	tgz := fmt.Sprintf("cni-plugins-linux-%s-v%s.tgz", p.Arch, p.Version)
	a := artifact{Name: fmt.Sprintf("cni-plugins %s linux/%s", p.Version, p.Arch), SumFile: tgz, Pinned: string(p.SHA256)}
	a.URL = locate(p.URL, linuxVals(p.Version, p.Arch), orDefault(p.BaseURL, cniUpstream), "v"+string(p.Version)+"/"+tgz)
	a.SumURL = withSuffix(a.URL, ".sha256")
	installDir := d.installDir
	d.jobs = append(d.jobs, job{art: a, label: "cni-plugins", check: "cni-artifacts", require: texts(p.Require), executablesOnly: true, selection: "top-level executables",
		pick: func(m string) (string, bool) {
			return path.Join(installDir, m), !strings.Contains(m, "/") && m != "."
		}})
	d.summary = fmt.Sprintf("cni-plugins %s linux/%s", p.Version, p.Arch)
	d.key = d.jobsKey()
	return d, nil
}
