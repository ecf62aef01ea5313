package steps

import (
	"fmt"
	"path"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/artifact"
)

const cniDoc = `Installs the CNI plugins into <machineDir>/<installDir> (mode 0755) from
<baseURL>/v<v>/cni-plugins-linux-<arch>-v<v>.tgz, verified against <tgz>.sha256.
Every executable at the top of the archive is installed; documents (LICENSE,
README) are not. The plugins listed in require must be in the archive, or
nothing is installed. Upstream baseURL: ` + cniUpstream + `.`

// CNIParams are the parameters of download-cni.
type CNIParams struct {
	MachineDir MachineDir `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Release    `yaml:",inline"`
	Arch       Arch           `yaml:"arch" jsonschema_description:"Architecture of the plugins (Go names: amd64, arm64)."`
	Require    []Name         `yaml:"require" jsonschema_description:"Plugins that must be in the archive."`
	InstallDir engine.RelPath `yaml:"installDir" jsonschema_description:"Directory inside the machine."`
}

var cniDefaults = CNIParams{
	Release:    Release{Version: "1.5.1"},
	Arch:       hostArch,
	Require:    []Name{"bridge", "host-local", "loopback"},
	InstallDir: "opt/cni/bin",
}

// cniCheck is the preflight check of download-cni.
const cniCheck = "cni-artifacts"

const cniUpstream = "https://github.com/containernetworking/plugins/releases/download"

// ExtendSchema adds what the tags cannot say: Source's rule, and each
// required plugin named once.
func (CNIParams) ExtendSchema(s map[string]any) {
	Source{}.ExtendSchema(s)
	uniqueItems(s, "require")
}

func newCNI(id string, p *CNIParams, o *Options) (engine.Step, error) {
	if errs := append(p.Source.problems("", "version", "arch", "os"), duplicates("require", p.Require)...); len(errs) > 0 {
		return nil, errs
	}
	s := o.downloads(id, p.MachineDir, p.InstallDir)
	tgz := fmt.Sprintf("cni-plugins-linux-%s-v%s.tgz", p.Arch, p.Version)
	a := artifact.Named("cni-plugins", string(p.Version), "linux/"+string(p.Arch))
	a.SumFile, a.Pinned = tgz, string(p.SHA256)
	a.URL = p.Source.locate(linuxVals(p.Version, p.Arch), cniUpstream, "v"+string(p.Version)+"/"+tgz)
	a.SumURL = withSuffix(a.URL, ".sha256")
	installDir := s.InstallDir
	s.Jobs = append(s.Jobs, artifact.Job{Artifact: a, Label: "cni-plugins", Check: cniCheck, Require: texts(p.Require), ExecutablesOnly: true, Selection: "top-level executables",
		Pick: func(m string) (string, bool) {
			return path.Join(installDir, m), !strings.Contains(m, "/") && m != "."
		}})
	s.Summary = fmt.Sprintf("cni-plugins %s linux/%s", p.Version, p.Arch)
	return artifact.New(s), nil
}
