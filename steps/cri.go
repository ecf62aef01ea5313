package steps

import (
	"fmt"
	"path"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/artifact"
)

const criDoc = `Installs containerd and runc into <machineDir>/<installDir> (mode 0755).
containerd comes from <containerd.baseURL>/v<v>/containerd-<v>-linux-<arch>.tar.gz,
verified against <tarball>.sha256sum; every file under bin/ in it is installed
(containerd, ctr, containerd-shim-runc-v2, ...). runc comes from
<runc.baseURL>/v<v>/runc.<arch>, verified against <baseURL>/v<v>/runc.sha256sum
(which lists every architecture). Versions are compared exactly (2.0.4 is not
2.0.41). Files are verified before they become visible.
Upstream containerd.baseURL: ` + containerdUpstream + `;
runc.baseURL: ` + runcUpstream + `.`

// criCheck is the preflight check of every download of download-cri.
const criCheck = "cri-artifacts"

// CRIParams are the parameters of download-cri.
type CRIParams struct {
	MachineDir MachineDir     `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Arch       Arch           `yaml:"arch" jsonschema_description:"Architecture of the binaries (Go names: amd64, arm64)."`
	Containerd Release        `yaml:"containerd" jsonschema_description:"Where containerd comes from."`
	Runc       Release        `yaml:"runc" jsonschema_description:"Where runc comes from (its checksums are in runc.sha256sum beside the binary)."`
	InstallDir engine.RelPath `yaml:"installDir" jsonschema_description:"Directory inside the machine."`
}

var criDefaults = CRIParams{
	Arch:       hostArch,
	Containerd: Release{Version: "2.0.4"},
	Runc:       Release{Version: "1.1.12"},
	InstallDir: "usr/local/bin",
}

const (
	containerdUpstream = "https://github.com/containerd/containerd/releases/download"
	runcUpstream       = "https://github.com/opencontainers/runc/releases/download"
)

func newCRI(id string, p *CRIParams, o *Options) (engine.Step, error) {
	errs := p.Containerd.Source.problems("containerd.", "version", "arch", "os")
	if errs = append(errs, p.Runc.Source.problems("runc.", "version", "arch", "os")...); len(errs) > 0 {
		return nil, errs
	}
	s := o.downloads(id, p.MachineDir, p.InstallDir)
	cv, rv := p.Containerd.Version, p.Runc.Version

	tarball := fmt.Sprintf("containerd-%s-linux-%s.tar.gz", cv, p.Arch)
	ca := artifact.Named("containerd", string(cv), "linux/"+string(p.Arch))
	ca.SumFile, ca.Pinned = tarball, string(p.Containerd.SHA256)
	ca.URL = p.Containerd.Source.locate(linuxVals(cv, p.Arch), containerdUpstream, "v"+string(cv)+"/"+tarball)
	ca.SumURL = withSuffix(ca.URL, ".sha256sum")
	installDir := s.InstallDir
	s.Jobs = append(s.Jobs, artifact.Job{Artifact: ca, Label: "containerd", Check: criCheck, Require: []string{"containerd"}, Selection: "bin/*", Pick: func(m string) (string, bool) {
		dir, base := path.Split(m)
		return path.Join(installDir, base), dir == "bin/" && base != ""
	}})

	runcFile := "runc." + string(p.Arch)
	ra := artifact.Named("runc", string(rv), "linux/"+string(p.Arch))
	ra.SumFile, ra.Pinned = runcFile, string(p.Runc.SHA256)
	// runc publishes one checksum file for all architectures, beside the binaries.
	ra.URL = p.Runc.Source.locate(linuxVals(rv, p.Arch), runcUpstream, "v"+string(rv)+"/"+runcFile)
	ra.SumURL = sibling(ra.URL, "runc.sha256sum")
	s.Jobs = append(s.Jobs, artifact.Job{Artifact: ra, Label: "runc", Check: criCheck, Dest: path.Join(installDir, "runc")})

	s.Summary = fmt.Sprintf("containerd %s, runc %s linux/%s", cv, rv, p.Arch)
	return artifact.New(s), nil
}
