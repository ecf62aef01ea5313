package steps

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
)

const criDoc = `Installs containerd and runc into <machineDir>/<installDir> (mode 0755).
containerd comes from <containerd.baseURL>/v<v>/containerd-<v>-linux-<arch>.tar.gz,
verified against <tarball>.sha256sum; every file under bin/ in it is installed
(containerd, ctr, containerd-shim-runc-v2, ...). runc comes from
<runc.baseURL>/v<v>/runc.<arch>, verified against <baseURL>/v<v>/runc.sha256sum
(which lists every architecture). Versions are compared exactly (2.0.4 is not
2.0.41). Files are verified before they become visible.`

// criCheck is the preflight check of every download of download-cri.
const criCheck = "cri-artifacts"

// CRIParams are the parameters of download-cri.
type CRIParams struct {
	MachineDir string           `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Arch       string           `yaml:"arch" jsonschema:"default=${host.arch}" jsonschema_description:"Architecture of the binaries (Go names: amd64, arm64)."`
	Containerd ContainerdSource `yaml:"containerd" jsonschema_description:"Where containerd comes from."`
	Runc       RuncSource       `yaml:"runc" jsonschema_description:"Where runc comes from."`
	InstallDir string           `yaml:"installDir" jsonschema:"default=usr/local/bin" jsonschema_description:"Directory inside the machine."`
}

// ContainerdSource configures the containerd download.
type ContainerdSource struct {
	Version string `yaml:"version" jsonschema:"default=2.0.4" jsonschema_description:"containerd version, without a leading v."`
	BaseURL string `yaml:"baseURL" jsonschema:"default=https://github.com/containerd/containerd/releases/download" jsonschema_description:"Replaces the upstream prefix; the release layout is kept."`
	URL     string `yaml:"url" jsonschema_description:"Whole-URL template with {version}, {arch} and {os}; checksum at <url>.sha256sum."`
	SHA256  string `yaml:"sha256" jsonschema_description:"Pinned SHA-256 of the tarball."`
}

// RuncSource configures the runc download.
type RuncSource struct {
	Version string `yaml:"version" jsonschema:"default=1.1.12" jsonschema_description:"runc version, without a leading v."`
	BaseURL string `yaml:"baseURL" jsonschema:"default=https://github.com/opencontainers/runc/releases/download" jsonschema_description:"Replaces the upstream prefix; the release layout is kept."`
	URL     string `yaml:"url" jsonschema_description:"Whole-URL template with {version}, {arch} and {os}; checksums in runc.sha256sum next to it."`
	SHA256  string `yaml:"sha256" jsonschema_description:"Pinned SHA-256 of the runc binary."`
}

func (p *CRIParams) Validate() []engine.FieldError {
	errs := machinePaths(p.MachineDir, p.InstallDir, p.Arch)
	c := sourceFor(p.Containerd.Version, p.Containerd.BaseURL, p.Containerd.URL, p.Containerd.SHA256)
	r := sourceFor(p.Runc.Version, p.Runc.BaseURL, p.Runc.URL, p.Runc.SHA256)
	errs = append(errs, c.validate("containerd.", true, "version", "arch", "os")...)
	return append(errs, r.validate("runc.", true, "version", "arch", "os")...)
}

func newCRI(id string, p *CRIParams, o *Options) (engine.Step, error) {
	d := &downloads{id: id, machineDir: filepath.Clean(p.MachineDir), installDir: path.Clean(p.InstallDir), opts: o}
	cv, rv := p.Containerd.Version, p.Runc.Version

	tarball := fmt.Sprintf("containerd-%s-linux-%s.tar.gz", cv, p.Arch)
	ca := artifact{Name: fmt.Sprintf("containerd %s linux/%s", cv, p.Arch), SumFile: tarball, Pinned: p.Containerd.SHA256}
	ca.URL = locate(p.Containerd.URL, linuxVals(cv, p.Arch), p.Containerd.BaseURL, "v"+cv+"/"+tarball)
	ca.SumURL = ca.URL + ".sha256sum"
	installDir := d.installDir
	d.jobs = append(d.jobs, job{art: ca, label: "containerd", check: criCheck, require: []string{"containerd"}, selection: "bin/*", pick: func(m string) (string, bool) {
		dir, base := path.Split(m)
		return path.Join(installDir, base), dir == "bin/" && base != ""
	}})

	runcFile := "runc." + p.Arch
	ra := artifact{Name: fmt.Sprintf("runc %s linux/%s", rv, p.Arch), SumFile: runcFile, Pinned: p.Runc.SHA256}
	// runc publishes one checksum file for all architectures, beside the binaries.
	ra.URL = locate(p.Runc.URL, linuxVals(rv, p.Arch), p.Runc.BaseURL, "v"+rv+"/"+runcFile)
	ra.SumURL = ra.URL[:strings.LastIndex(ra.URL, "/")+1] + "runc.sha256sum"
	d.jobs = append(d.jobs, job{art: ra, label: "runc", check: criCheck, dest: path.Join(installDir, "runc")})

	d.summary = fmt.Sprintf("containerd %s, runc %s linux/%s", cv, rv, p.Arch)
	d.key = stateKey(*p)
	return d, nil
}
