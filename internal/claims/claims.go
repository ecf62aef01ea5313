// Package claims gives every path that download steps install into a
// machine one owner. A claim is a small file under Dir naming the path's
// owner (a step and the artifact label within it); it appears atomically
// (a complete file hard-linked to its name, which fails if the name is
// taken), so steps running at the same time cannot both own a path, and
// no install record, which other steps write concurrently, has to be
// consulted.
//
// It reads and writes only through the machine's os.Root, and never
// decides from a claim's content that a live step's path is free: only
// the step itself, or the plan no longer having the step, gives it up.
package claims

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

	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/machine"
)

// Dir holds the claims, one file per claimed path.
const Dir = machine.StateDir + "/claims"

// Claim is what a claim file says: only what stays the same across
// versions, so that a new version of an artifact does not rewrite it.
type Claim struct {
	Path     string `json:"path"`
	Step     string `json:"step"`
	Artifact string `json:"artifact"` // the job's stable label: kubelet, containerd, cni-plugins
}

// maxClaim bounds the read of a claim file.
const maxClaim = 64 << 10

func fileName(p string) string {
	sum := sha256.Sum256([]byte(p))
	return path.Join(Dir, hex.EncodeToString(sum[:])+".json")
}

// ConflictError says two artifacts or steps would install one path.
type ConflictError struct {
	Path        string
	Owner, Want string // "containerd (step cri)"
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s would be installed by both %s and %s; a path in a machine has one owner (remove it from one of them)", e.Path, e.Owner, e.Want)
}

// read returns the claim in file name; nil when there is none, or when
// the file is not a claim (claims are written whole, so rootfsctl did not
// write it), which present then says.
func read(root *os.Root, name string) (c *Claim, present bool, err error) {
	b, err := machine.ReadFile(root, name, maxClaim)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	c = &Claim{}
	if json.Unmarshal(b, c) != nil || c.Path == "" || c.Step == "" {
		return nil, true, nil
	}
	return c, true, nil
}

// errHeld: the claim is the claimant's already.
var errHeld = errors.New("claimed already")

// Take makes want's step and artifact the owner of want.Path, or returns a
// *ConflictError naming the owner when another step has it. Re-claiming
// one's own path is fine, and so is taking one over from another artifact
// of the same step (the caller has checked its artifacts want each path
// once). what describes the claimant for the message ("containerd 2.0.4
// linux/amd64 (step cri)").
//
// A claim held by a step for which inPlan is false (the plan being run no
// longer has it: renamed or removed) is stale: it is taken over, and said
// so in the log.
func Take(ctx context.Context, root *os.Root, want Claim, what string, inPlan func(step string) bool) error {
	name := fileName(want.Path)
	for range 3 {
		err := makeRoom(ctx, root, name, want, what, inPlan)
		switch {
		case errors.Is(err, errHeld):
			return nil
		case err != nil:
			return err
		}
		err = write(root, name, want)
		if errors.Is(err, fs.ErrExist) {
			continue // claimed at this moment by another step: read whose
		}
		if err != nil {
			return fmt.Errorf("claim %s: %w", want.Path, err)
		}
		return nil
	}
	return fmt.Errorf("claim %s: the claim keeps changing", want.Path)
}

// makeRoom decides about the claim at name: errHeld when want holds it, a
// *ConflictError when another live step does, and nil once the name is
// free for want's claim (none there, or one it may take over, removed).
func makeRoom(ctx context.Context, root *os.Root, name string, want Claim, what string, inPlan func(string) bool) error {
	p := want.Path
	c, present, err := read(root, name)
	if err != nil {
		return fmt.Errorf("read the claim on %s: %w", p, err)
	}
	verb := "replace"
	switch {
	case c != nil && c.Step == want.Step && c.Artifact == want.Artifact:
		return errHeld
	case c != nil && c.Step == want.Step:
		// Another artifact of this step had it; the step's artifacts were
		// just checked to want it once, so the path moved to this one.
		// Only this step writes its own claims: take it over.
		verb = "move"
	case c != nil && inPlan(c.Step):
		// Not permanent: the owner may be applying right now in this run,
		// about to release a path its plan no longer installs; a retry
		// then finds the path free. A real conflict fails again.
		return &ConflictError{Path: p, Owner: fmt.Sprintf("%s (step %s)", c.Artifact, c.Step), Want: what}
	case c != nil:
		zerolog.Ctx(ctx).Warn().Str("path", p).Str("owner", c.Step).Msg("the step that installed this path is no longer in the plan; taking it over")
		verb = "take over"
	case !present:
		// Free. Decided from the one read: a second look (a stat) could
		// find the claim another step made meanwhile, and remove it as if
		// it were not one; the link that writes this claim fails instead,
		// and the next round reads whose it is.
		return nil
	default:
		// Present but not a claim, so not written by rootfsctl (claims
		// appear whole): take the name over.
	}
	if err := root.Remove(name); err != nil {
		return fmt.Errorf("%s the claim on %s: %w", verb, p, err)
	}
	return nil
}

// write makes the claim appear whole under name, unless the name is taken
// (fs.ErrExist).
func write(root *os.Root, name string, c Claim) error {
	b, _ := json.Marshal(c) // plain strings: cannot fail
	f, err := atomicfile.Create(root, name, c.Step)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Abort()
		return err
	}
	return f.Link()
}

// Release drops step's claims on paths it no longer installs (keep lists
// those it does). Best effort: a claim left behind only blocks another
// step from that path, with a message naming this step.
func Release(root *os.Root, step string, keep map[string]bool) {
	d, err := root.Open(Dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		name := path.Join(Dir, n)
		c, _, err := read(root, name)
		if err != nil || c == nil || c.Step != step || keep[c.Path] || fileName(c.Path) != name {
			continue
		}
		_ = root.Remove(name)
	}
}

// Tidy removes the temporary files of step's claims that an interrupted
// run left (only those no live run holds).
func Tidy(root *os.Root, step string) { atomicfile.RemoveTemps(root, Dir, step) }
