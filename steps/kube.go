package steps

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/artifact"
)

const kubeDoc = `Downloads the Kubernetes node binaries into <machineDir>/<installDir>
(mode 0755): each of binaries from <baseURL>/v<version>/bin/linux/<arch>/<binary>,
verified against <url>.sha256, and crictl from
<crictl.baseURL>/v<v>/crictl-v<v>-linux-<arch>.tar.gz, verified against
<tarball>.sha256 (only the crictl member is installed). Every file is verified
before it becomes visible; on any failure the previous file stays in place.
Up to date when the install record in the machine matches the plan and every
installed file still has its recorded digest; nothing from the rootfs is
executed (it may be built for another architecture).
Upstream baseURL: ` + kubeUpstream + `; crictl.baseURL: ` + crictlUpstream + `.`

// KubeParams are the parameters of download-kube.
type KubeParams struct {
	MachineDir MachineDir `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Version    Version    `yaml:"version" jsonschema:"required" jsonschema_description:"Kubernetes version, without a leading v (1.33.1)."`
	Arch       Arch       `yaml:"arch" jsonschema_description:"Architecture of the binaries (Go names: amd64, arm64)."`
	Source     `yaml:",inline"`
	SHA256     map[string]Digest `yaml:"sha256" jsonschema_description:"Pinned SHA-256 per binary, checked instead of the published checksums."`
	Binaries   []Name            `yaml:"binaries" jsonschema:"minItems=1" jsonschema_description:"Which binaries to install."`
	Crictl     CrictlSource      `yaml:"crictl" jsonschema_description:"Where crictl comes from; its version defaults to <major>.<minor>.0 of the Kubernetes version."`
	InstallDir engine.RelPath    `yaml:"installDir" jsonschema_description:"Directory inside the machine."`
}

// CrictlSource configures the crictl download.
type CrictlSource struct {
	Release `yaml:",inline"`
	Skip    bool `yaml:"skip" jsonschema_description:"Do not install crictl."`
}

var kubeDefaults = KubeParams{
	Arch:       hostArch,
	Binaries:   []Name{"kubelet", "kubectl", "kube-proxy"},
	InstallDir: "usr/local/bin",
}

// kubeCheck is the preflight check of every download of download-kube.
const kubeCheck = "kubernetes-artifacts"

const (
	kubeUpstream   = "https://dl.k8s.io"
	crictlUpstream = "https://github.com/kubernetes-sigs/cri-tools/releases/download"
)

// ExtendSchema adds what the tags cannot say: Source's rule, and each
// binary named once.
func (KubeParams) ExtendSchema(s map[string]any) {
	Source{}.ExtendSchema(s)
	uniqueItems(s, "binaries")
}

// problems are the findings no single field shows.
func (p *KubeParams) problems() engine.FieldErrors {
	errs := p.Source.problems("", "version", "arch", "os", "binary")
	errs = append(errs, duplicates("binaries", p.Binaries)...)
	for b := range p.SHA256 {
		if !slices.Contains(p.Binaries, Name(b)) {
			errs = append(errs, engine.FieldError{Path: "sha256", Uses: []string{"binaries"}, Message: fmt.Sprintf("pins %q, which is not in binaries", b)})
		}
	}
	return append(errs, p.Crictl.Source.problems("crictl.", "version", "arch", "os")...)
}

// minorZero turns 1.33.1 into 1.33.0, crictl's default version.
func minorZero(v Version) Version {
	parts := strings.SplitN(string(v), ".", 3)
	if len(parts) < 2 {
		return v
	}
	return Version(parts[0] + "." + parts[1] + ".0")
}

func newKube(id string, p *KubeParams, o *Options) (engine.Step, error) {
	if errs := p.problems(); len(errs) > 0 {
		return nil, errs
	}
	s := o.downloads(id, p.MachineDir, p.InstallDir)
	vals := linuxVals(p.Version, p.Arch)
	var names []string
	for _, bin := range p.Binaries {
		b := string(bin)
		names = append(names, b)
		vals["binary"] = b
		a := artifact.Named(b, string(p.Version), "linux/"+string(p.Arch))
		a.SumFile, a.Pinned = b, string(p.SHA256[b])
		a.URL = p.Source.locate(vals, kubeUpstream, fmt.Sprintf("v%s/bin/linux/%s/%s", p.Version, p.Arch, b))
		a.SumURL = withSuffix(a.URL, ".sha256")
		s.Jobs = append(s.Jobs, artifact.Job{Artifact: a, Label: b, Check: kubeCheck, Dest: path.Join(s.InstallDir, b)})
	}
	summary := fmt.Sprintf("%s %s linux/%s", strings.Join(names, ", "), p.Version, p.Arch)
	if !p.Crictl.Skip {
		cv := p.Crictl.Version
		if cv == "" {
			cv = minorZero(p.Version)
		}
		tarball := fmt.Sprintf("crictl-v%s-linux-%s.tar.gz", cv, p.Arch)
		a := artifact.Named("crictl", string(cv), "linux/"+string(p.Arch))
		a.SumFile, a.Pinned = tarball, string(p.Crictl.SHA256)
		a.URL = p.Crictl.Source.locate(linuxVals(cv, p.Arch), crictlUpstream, "v"+string(cv)+"/"+tarball)
		a.SumURL = withSuffix(a.URL, ".sha256")
		dest := path.Join(s.InstallDir, "crictl")
		s.Jobs = append(s.Jobs, artifact.Job{Artifact: a, Label: "crictl", Check: kubeCheck, Require: []string{"crictl"}, Selection: "crictl", Pick: func(m string) (string, bool) {
			return dest, m == "crictl"
		}})
		summary += fmt.Sprintf("; crictl %s", cv)
	}
	s.Summary = summary
	return artifact.New(s), nil
}
