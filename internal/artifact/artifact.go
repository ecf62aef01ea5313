// Package artifact is the machinery of the download steps (download-kube,
// -cri and -cni): it downloads and verifies their artifacts into the cache,
// takes archives apart, installs the chosen files into a machine with one
// owner per path (internal/claims), records what it installed so that a
// check needs neither the network nor anything from the rootfs, and probes
// in preflight that the artifacts can be had.
//
// Every download is verified against a pinned or published SHA-256 before
// anything could use it, and every file appears in the machine whole,
// through the machine's os.Root (internal/atomicfile), never a path join.
// It must not execute anything from the rootfs (which may be built for
// another architecture), and starts no goroutine outside the budget in its
// context (internal/budget).
package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"sync"

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/claims"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/machine"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
)

// Artifact is a resolved download: where it is, how to verify it.
type Artifact struct {
	Name     string // what it is, for messages: "kubelet 1.33.1 linux/amd64"
	What     string // kubelet
	Version  string // 1.33.1
	Platform string // linux/amd64
	URL      string
	SumURL   string // published checksum document, when Pinned is ""
	SumFile  string // the name to look up in that document
	Pinned   string // sha256 from the plan
}

// Named is the artifact what (kubelet) of a version for a platform
// (linux/amd64), to be located by the caller.
func Named(what, version, platform string) Artifact {
	return Artifact{Name: what + " " + version + " " + platform, What: what, Version: version, Platform: platform}
}

// key identifies the artifact: what it is (name, version, platform), the
// file it is published as, and its pin. Where it is served from is not
// part of it: the same release from a mirror is the same artifact, and
// moving a plan to a mirror reinstalls nothing.
func (a Artifact) key() string {
	return stateKey([]string{a.Name, a.SumFile, a.Pinned})
}

// Job is one artifact of a download step: a binary installed as it is
// (Dest), or an archive whose chosen members are installed (Pick).
type Job struct {
	Artifact Artifact
	// Label names the artifact in the machine's claims on paths: stable
	// across versions (kubelet, containerd, cni-plugins).
	Label string
	// Check is the preflight check the artifact belongs to: its step's, so
	// that ignoring it covers every download of the step.
	Check   string
	Dest    string                                     // direct binary: path inside the rootfs
	Pick    func(member string) (dest string, ok bool) // archive: which members go where
	Require []string                                   // archive: members that must be present (by dest base name)
	// ExecutablesOnly skips members without an execute bit (LICENSE, README).
	ExecutablesOnly bool
	// Selection names what Pick and ExecutablesOnly choose, so the cached
	// list of an archive's members is only reused for the same choice.
	Selection string
}

// Spec is what a download step installs.
type Spec struct {
	Step       string // the step's id: owner of its records, claims and temporary files
	MachineDir string
	InstallDir string // inside the machine
	Summary    string // what is installed, in words
	Jobs       []Job
	Fetch      *fetch.Client
	Cache      *cache.Cache
	// Mirror, when set, is where artifacts come from instead of upstream;
	// with Fallback, one the mirror lacks comes from upstream.
	Mirror   *mirror.Mirror
	Fallback bool
}

// Installer is a download step: an engine.Step that also prefetches,
// preflights, tidies and names its resources.
type Installer struct {
	Spec
	key string // stateKey of the desired state

	mu     sync.Mutex
	staged *stage // this run's stage, from the prefetch until Release
	// fresh holds the digests of cache entries this run wrote, hashing
	// them as it wrote them: verified, so staging copies them unhashed.
	fresh sync.Map
}

// New returns the installer of s.
func New(s Spec) *Installer {
	return &Installer{Spec: s, key: jobsKey(s.InstallDir, s.Jobs)}
}

// jobsKey digests what decides the installed files: each artifact's
// identity, where its files go and which members are chosen. Sources
// (URLs) are not in it; see Artifact.key.
func jobsKey(installDir string, jobs []Job) string {
	type jobKey struct {
		Artifact, Dest, Selection string
		Require                   []string
		ExecutablesOnly           bool
	}
	keys := []any{installDir}
	for _, j := range jobs {
		keys = append(keys, jobKey{j.Artifact.key(), j.Dest, j.Selection, j.Require, j.ExecutablesOnly})
	}
	return stateKey(keys)
}

// stateKey digests the values that decide what a step installs.
func stateKey(v any) string {
	b, _ := json.Marshal(v) // plain structs of strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Resources: the machine directory the files go into.
func (in *Installer) Resources() []string { return []string{in.MachineDir} }

// Tidy removes this step's temporary files left by an interrupted run.
func (in *Installer) Tidy(context.Context) error {
	root, err := machine.Open(in.MachineDir)
	if err != nil {
		return nil // no machine yet: nothing to tidy
	}
	defer root.Close()
	in.tidy(root)
	// No prefetch ran for an up-to-date step: a stage there is a leftover.
	_ = os.RemoveAll(stagePath(in.MachineDir, in.Step))
	return nil
}

func (in *Installer) tidy(root *os.Root) {
	atomicfile.RemoveTemps(root, in.InstallDir, in.Step)
	atomicfile.RemoveTemps(root, machine.StateDir, in.Step)
	claims.Tidy(root, in.Step)
}
