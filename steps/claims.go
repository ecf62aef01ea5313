package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
)

// claimsDir holds one claim per path a download step installs into the
// machine: the owner of the path. A claim appears atomically (a complete
// file hard-linked to its name, which fails if the name exists), so steps
// running at the same time cannot both own a path, and no install record,
// which other steps write concurrently, has to be consulted.
const claimsDir = StateDir + "/claims"

// claim is the content of a claim file: only what stays the same across
// versions, so that a new version of an artifact does not rewrite it.
type claim struct {
	Path     string `json:"path"`
	Step     string `json:"step"`
	Artifact string `json:"artifact"` // the job's stable label: kubelet, containerd, cni-plugins
}

// maxClaim bounds the read of a claim file.
const maxClaim = 64 << 10

func claimName(p string) string {
	sum := sha256.Sum256([]byte(p))
	return path.Join(claimsDir, hex.EncodeToString(sum[:])+".json")
}

// ConflictError says two artifacts or steps would install one path.
type ConflictError struct {
	Path        string
	Owner, Want string // "containerd (step cri)"
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s would be installed by both %s and %s; a path in a machine has one owner (remove it from one of them)", e.Path, e.Owner, e.Want)
}

// readClaim returns the claim on name, or nil when there is none or it
// is unreadable (claims are written whole, so rootfsctl did not write it).
func readClaim(root *os.Root, name string) (*claim, error) {
	b, err := readBounded(root, name, maxClaim)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c claim
	if json.Unmarshal(b, &c) != nil || c.Path == "" || c.Step == "" {
		return nil, nil
	}
	return &c, nil
}

// claimPath makes step's artifact the owner of p, or returns a
// *ConflictError naming the owner when another step has it. Re-claiming
// one's own path is fine, and so is taking one over from another artifact
// of the same step (the caller has checked its artifacts want each path
// once). what describes the claimant for the
// message ("containerd 2.0.4 linux/amd64 (step cri)").
//
// A claim held by a step the plan being run does not have (renamed or
// removed) is stale: it is taken over, and said so in the log.
func claimPath(ctx context.Context, root *os.Root, p, step, artifact, what string) error {
	want := claim{Path: p, Step: step, Artifact: artifact}
	name := claimName(p)
	for range 3 {
		c, err := readClaim(root, name)
		if err != nil {
			return fmt.Errorf("read the claim on %s: %w", p, err)
		}
		switch {
		case c != nil && c.Step == step && c.Artifact == artifact:
			return nil
		case c != nil && c.Step == step:
			// Another artifact of this step had it; the step's artifacts
			// were just checked to want it once, so the path moved to this
			// one. Only this step writes its own claims: take it over.
			if err := root.Remove(name); err != nil {
				return fmt.Errorf("move the claim on %s: %w", p, err)
			}
			continue
		case c != nil && !ownerInPlan(ctx, c.Step):
			zerolog.Ctx(ctx).Warn().Str("path", p).Str("owner", c.Step).Msg("the step that installed this path is no longer in the plan; taking it over")
			if err := root.Remove(name); err != nil {
				return fmt.Errorf("take over the claim on %s: %w", p, err)
			}
			continue
		case c != nil:
			// Not permanent: the owner may be applying right now in this
			// run, about to release a path its plan no longer installs; a
			// retry then finds the path free. A real conflict fails again.
			return &ConflictError{Path: p, Owner: fmt.Sprintf("%s (step %s)", c.Artifact, c.Step), Want: what}
		}
		if _, err := root.Lstat(name); err == nil {
			// Present but unreadable, so not written by rootfsctl (claims
			// appear whole): take the name over.
			if err := root.Remove(name); err != nil {
				return fmt.Errorf("replace the claim on %s: %w", p, err)
			}
		}
		b, _ := json.Marshal(want) // plain strings: cannot fail
		f, err := atomicfile.Create(root, name, step)
		if err != nil {
			return fmt.Errorf("claim %s: %w", p, err)
		}
		if _, err := f.Write(append(b, '\n')); err != nil {
			f.Abort()
			return fmt.Errorf("claim %s: %w", p, err)
		}
		err = f.Link()
		if errors.Is(err, fs.ErrExist) {
			continue // claimed at this moment by another step: read whose
		}
		if err != nil {
			return fmt.Errorf("claim %s: %w", p, err)
		}
		return nil
	}
	return fmt.Errorf("claim %s: the claim keeps changing", p)
}

// ownerInPlan: a claim's owner is live unless the plan being run is known
// and has no step of that id.
func ownerInPlan(ctx context.Context, step string) bool {
	has, known := engine.PlanHasStep(ctx, step)
	return has || !known
}

// releaseClaims drops step's claims on paths it no longer installs (keep
// lists those it does). Best effort: a claim left behind only blocks
// another step from that path, with a message naming this step.
func releaseClaims(root *os.Root, step string, keep map[string]bool) {
	d, err := root.Open(claimsDir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		name := path.Join(claimsDir, n)
		c, err := readClaim(root, name)
		if err != nil || c == nil || c.Step != step || keep[c.Path] || claimName(c.Path) != name {
			continue
		}
		_ = root.Remove(name)
	}
}
