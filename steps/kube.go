package steps

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps/fetch"
)

const kubeDoc = `Downloads the Kubernetes node binaries into <machineDir>/<installDir>
(mode 0755): each of binaries from <baseURL>/v<version>/bin/linux/<arch>/<binary>,
verified against <url>.sha256, and crictl from
<crictl.baseURL>/v<v>/crictl-v<v>-linux-<arch>.tar.gz, verified against
<tarball>.sha256 (only the crictl member is installed). Every file is verified
before it becomes visible; on any failure the previous file stays in place.
Up to date when the install record in the machine matches the plan and every
installed file still has its recorded digest; nothing from the rootfs is
executed (it may be built for another architecture).`

// KubeParams are the parameters of download-kube.
type KubeParams struct {
	MachineDir string            `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute)."`
	Version    string            `yaml:"version" jsonschema:"required" jsonschema_description:"Kubernetes version, without a leading v (1.33.1)."`
	Arch       string            `yaml:"arch" jsonschema:"default=${host.arch}" jsonschema_description:"Architecture of the binaries (Go names: amd64, arm64)."`
	BaseURL    string            `yaml:"baseURL" jsonschema:"default=https://dl.k8s.io" jsonschema_description:"Replaces the upstream prefix; <baseURL>/v<version>/bin/linux/<arch>/<binary> is kept."`
	URL        string            `yaml:"url" jsonschema_description:"Whole-URL template with {version}, {arch}, {os} and {binary}; checksums at <url>.sha256."`
	SHA256     map[string]string `yaml:"sha256" jsonschema_description:"Pinned SHA-256 per binary, checked instead of the published checksums."`
	Binaries   []string          `yaml:"binaries" jsonschema:"default=[kubelet\\, kubectl\\, kube-proxy],minItems=1" jsonschema_description:"Which binaries to install."`
	Crictl     CrictlSource      `yaml:"crictl" jsonschema_description:"Where crictl comes from."`
	InstallDir string            `yaml:"installDir" jsonschema:"default=usr/local/bin" jsonschema_description:"Directory inside the machine."`
}

// CrictlSource configures the crictl download.
type CrictlSource struct {
	Version string `yaml:"version" jsonschema_description:"crictl version; default <major>.<minor>.0 of the Kubernetes version."`
	BaseURL string `yaml:"baseURL" jsonschema:"default=https://github.com/kubernetes-sigs/cri-tools/releases/download" jsonschema_description:"Replaces the upstream prefix; the release layout is kept."`
	URL     string `yaml:"url" jsonschema_description:"Whole-URL template with {version}, {arch} and {os}; checksum at <url>.sha256."`
	SHA256  string `yaml:"sha256" jsonschema_description:"Pinned SHA-256 of the tarball."`
	Skip    bool   `yaml:"skip" jsonschema:"default=false" jsonschema_description:"Do not install crictl."`
}

// kubeCheck is the preflight check of every download of download-kube.
const kubeCheck = "kubernetes-artifacts"

var (
	archPattern   = regexp.MustCompile(`^[a-z0-9]+$`)
	binaryPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

func (p *KubeParams) Validate() []engine.FieldError {
	errs := machinePaths(p.MachineDir, p.InstallDir, p.Arch)
	src := sourceFor(p.Version, p.BaseURL, p.URL, "")
	errs = append(errs, src.validate("", true, "version", "arch", "os", "binary")...)
	for i, b := range p.Binaries {
		if !binaryPattern.MatchString(b) {
			errs = append(errs, engine.FieldError{Path: fmt.Sprintf("binaries[%d]", i), Message: fmt.Sprintf("%q is not a binary name", b)})
		}
	}
	for b, sum := range p.SHA256 {
		if !contains(p.Binaries, b) {
			errs = append(errs, engine.FieldError{Path: "sha256", Message: fmt.Sprintf("pins %q, which is not in binaries", b)})
		}
		if !fetch.IsSHA256(sum) {
			errs = append(errs, engine.FieldError{Path: "sha256." + b, Message: "must be 64 lowercase hex digits"})
		}
	}
	c := sourceFor(p.Crictl.Version, p.Crictl.BaseURL, p.Crictl.URL, p.Crictl.SHA256)
	return append(errs, c.validate("crictl.", false, "version", "arch", "os")...)
}

// machinePaths validates the fields every machine step shares.
func machinePaths(machineDir, installDir, arch string) []engine.FieldError {
	var errs []engine.FieldError
	if !filepath.IsAbs(machineDir) || filepath.Clean(machineDir) == "/" {
		errs = append(errs, engine.FieldError{Path: "machineDir", Message: fmt.Sprintf("must be an absolute path other than /, got %q", machineDir)})
	}
	if installDir != "" {
		if msg := relPathProblem(installDir); msg != "" {
			errs = append(errs, engine.FieldError{Path: "installDir", Message: msg})
		}
	}
	if arch != "" && !archPattern.MatchString(arch) {
		errs = append(errs, engine.FieldError{Path: "arch", Message: fmt.Sprintf("%q is not a Go architecture name (amd64, arm64)", arch)})
	}
	return errs
}

// relPathProblem explains why p is not a clean path inside the machine.
func relPathProblem(p string) string {
	clean := path.Clean(p)
	switch {
	case path.IsAbs(p):
		return fmt.Sprintf("must be relative to machineDir, got %q", p)
	case clean == "." || clean == ".." || strings.HasPrefix(clean, "../"):
		return fmt.Sprintf("must name a directory inside the machine, got %q", p)
	}
	return ""
}

// minorZero turns 1.33.1 into 1.33.0, crictl's default version.
func minorZero(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1] + ".0"
}

func newKube(id string, p *KubeParams, o *Options) (engine.Step, error) {
	d := &downloads{id: id, machineDir: filepath.Clean(p.MachineDir), installDir: path.Clean(p.InstallDir), opts: o}
	vals := linuxVals(p.Version, p.Arch)
	for _, b := range p.Binaries {
		vals["binary"] = b
		a := artifact{Name: fmt.Sprintf("%s %s linux/%s", b, p.Version, p.Arch), SumFile: b, Pinned: p.SHA256[b]}
		a.URL = locate(p.URL, vals, p.BaseURL, fmt.Sprintf("v%s/bin/linux/%s/%s", p.Version, p.Arch, b))
		a.SumURL = a.URL + ".sha256"
		d.jobs = append(d.jobs, job{art: a, label: b, check: kubeCheck, dest: path.Join(d.installDir, b)})
	}
	summary := fmt.Sprintf("%s %s linux/%s", strings.Join(p.Binaries, ", "), p.Version, p.Arch)
	if !p.Crictl.Skip {
		cv := p.Crictl.Version
		if cv == "" {
			cv = minorZero(p.Version)
		}
		tarball := fmt.Sprintf("crictl-v%s-linux-%s.tar.gz", cv, p.Arch)
		a := artifact{Name: fmt.Sprintf("crictl %s linux/%s", cv, p.Arch), SumFile: tarball, Pinned: p.Crictl.SHA256}
		a.URL = locate(p.Crictl.URL, linuxVals(cv, p.Arch), p.Crictl.BaseURL, "v"+cv+"/"+tarball)
		a.SumURL = a.URL + ".sha256"
		dest := path.Join(d.installDir, "crictl")
		d.jobs = append(d.jobs, job{art: a, label: "crictl", check: kubeCheck, require: []string{"crictl"}, selection: "crictl", pick: func(m string) (string, bool) {
			return dest, m == "crictl"
		}})
		summary += fmt.Sprintf("; crictl %s", cv)
	}
	d.summary = summary
	d.key = stateKey(struct {
		P      KubeParams
		Crictl string
	}{*p, summary})
	return d, nil
}
