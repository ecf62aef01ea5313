// Package steps holds rootfsctl's step types, one file each: its typed
// parameters (decoded and checked by the engine, starting from the
// defaults value given to Register), the builder that parses them once
// into an engine.Step, its Check and Apply, and its preflight checks. The
// machinery steps share lives in internal packages of one noun each
// (artifact, oci, machine, nspawn, cache, fetch, unpack). Steps exchange
// nothing in memory: their inputs are their parameters, their outputs land
// on disk.
//
// Steps must not read host facts themselves (they arrive as parameters), keep
// no global state, start no goroutine outside the budget in their context,
// and never write into a machine directory through a plain path join: every
// such write goes through an os.Root.
package steps

import (
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/artifact"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/machine"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
)

// Options are what steps need from the process that runs them; cmd sets
// them, tests replace them.
type Options struct {
	Fetch      *fetch.Client  // downloads; default: production timeouts and retries
	Keychain   authn.Keychain // registry credentials; default: the Docker config keychain
	Cache      *cache.Cache   // downloads and image blobs, by digest; default: a directory under os.TempDir()
	Privileged bool           // running as root: keep file owners, device nodes, security xattrs
	// KillGrace is how long a cancelled run command has between SIGTERM
	// and SIGKILL; default DefaultKillGrace.
	KillGrace time.Duration
	// Mirror, when set, is where the image and every artifact come from
	// instead of their upstream (internal/mirror); with MirrorFallback, an
	// item the mirror lacks comes from upstream.
	Mirror         *mirror.Mirror
	MirrorFallback bool
}

// Register adds every built-in step type to reg.
func Register(reg *engine.Registry, opts Options) {
	if opts.Fetch == nil {
		opts.Fetch = fetch.New("rootfsctl/dev")
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Cache == nil {
		opts.Cache = cache.New(filepath.Join(os.TempDir(), "rootfsctl-cache"))
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	o := &opts
	engine.Register(reg, engine.StepType{Name: "run", Summary: "Run a command.", Doc: runDoc}, RunParams{},
		func(id string, p *RunParams) (engine.Step, error) { return newRun(id, p, o) })
	engine.Register(reg, engine.StepType{Name: "file", Summary: "Write a file with the given content and mode.", Doc: fileDoc}, fileDefaults, newFile)
	engine.Register(reg, engine.StepType{Name: "ensure-workspace", Summary: "Unpack an OCI image as the machine's rootfs and write its nspawn settings.", Doc: workspaceDoc,
		Checks: []string{imageCheckName, provisioningCheckName}}, workspaceDefaults,
		func(id string, p *WorkspaceParams) (engine.Step, error) { return newWorkspace(id, p, o) })
	engine.Register(reg, engine.StepType{Name: "configure-os", Summary: "Write kmsg, modules, apt sources and hostname into the machine.", Doc: osDoc}, osDefaults,
		func(id string, p *OSParams) (engine.Step, error) { return newOSConfig(id, p, o) })
	engine.Register(reg, engine.StepType{Name: "disable-resolved", Summary: "Mask systemd-resolved in the machine and copy the host's resolv.conf.", Doc: resolvedDoc}, resolvedDefaults,
		func(id string, p *ResolvedParams) (engine.Step, error) { return newResolved(id, p, o) })
	engine.Register(reg, engine.StepType{Name: "download-kube", Summary: "Install kubelet, kubectl, kube-proxy and crictl into the machine.", Doc: kubeDoc,
		Checks: []string{kubeCheck}}, kubeDefaults,
		func(id string, p *KubeParams) (engine.Step, error) { return newKube(id, p, o) })
	engine.Register(reg, engine.StepType{Name: "download-cri", Summary: "Install containerd and runc into the machine.", Doc: criDoc,
		Checks: []string{criCheck}}, criDefaults,
		func(id string, p *CRIParams) (engine.Step, error) { return newCRI(id, p, o) })
	engine.Register(reg, engine.StepType{Name: "download-cni", Summary: "Install the CNI plugins into the machine.", Doc: cniDoc,
		Checks: []string{cniCheck}}, cniDefaults,
		func(id string, p *CNIParams) (engine.Step, error) { return newCNI(id, p, o) })
}

// TempPrefix starts the name of every temporary file rootfsctl creates next
// to a final path, so that leftovers of a crash are recognisable.
const TempPrefix = atomicfile.TempPrefix

// StateDir is where steps record, inside the machine's rootfs, what they
// installed. ensure-workspace removes any copy an image ships, so the
// records are always rootfsctl's own.
const StateDir = machine.StateDir

// downloads starts the spec of a download step.
func (o *Options) downloads(id string, dir MachineDir, installDir engine.RelPath) artifact.Spec {
	return artifact.Spec{Step: id, MachineDir: dir.String(), InstallDir: installDir.String(), Fetch: o.Fetch, Cache: o.Cache,
		Mirror: o.Mirror, Fallback: o.MirrorFallback}
}
