package artifact

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/claims"
	"github.com/rootfsctl/rootfsctl/internal/machine"
	"github.com/rootfsctl/rootfsctl/internal/retry"
	"github.com/rootfsctl/rootfsctl/internal/trace"
)

// Check is up to date when the install record matches the plan and every
// recorded file still has its recorded digest.
func (in *Installer) Check(_ context.Context) (engine.Change, error) {
	root, err := machine.Open(in.MachineDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return engine.NeedsChange("machine directory does not exist yet"), nil
		}
		return engine.Change{}, err
	}
	defer root.Close()
	rec, err := readRecord(root, in.Step)
	if err != nil {
		return engine.Change{}, err
	}
	switch {
	case rec == nil:
		return engine.NeedsChange("not installed: " + in.Summary), nil
	case rec.Key != in.key && rec.Summary == in.Summary:
		return engine.NeedsChange(fmt.Sprintf("installed %s with other settings; the plan changes the install directory, a pinned digest or the files chosen", in.Summary)), nil
	case rec.Key != in.key:
		return engine.NeedsChange(fmt.Sprintf("installed %s; plan wants %s", rec.Summary, in.Summary)), nil
	}
	problem, err := verify(root, rec.Files)
	if err != nil {
		return engine.Change{}, err
	}
	if problem != "" {
		return engine.NeedsChange(problem), nil
	}
	return engine.UpToDate("installed: " + in.Summary), nil
}

// Apply installs what the plan wants: first what every job installs where
// (nothing in the machine changes yet), then the claims on those paths,
// then the files, and last the record.
func (in *Installer) Apply(ctx context.Context) error {
	root, err := machine.Open(in.MachineDir)
	if err != nil {
		return err
	}
	defer root.Close()
	in.tidy(root)
	old, err := readRecord(root, in.Step)
	if err != nil {
		return err
	}
	// The old record goes first: if we crash between here and the new
	// record, the next Check sees "not installed" and repairs.
	if err := root.Remove(recordPath(in.Step)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove install record: %w", err)
	}
	hold := &pins{}
	defer hold.release()
	end := trace.Span(ctx, "fetch artifacts")
	plans, err := in.plan(ctx, root, old, hold)
	end()
	if err != nil {
		return err
	}
	keep, err := in.claim(ctx, root, plans)
	if err != nil {
		return err
	}
	end = trace.Span(ctx, "install files")
	files, err := in.installAll(ctx, root, plans, hold)
	end()
	if err != nil {
		return err
	}
	if old != nil {
		removeObsolete(ctx, root, old.Files, keep)
	}
	sort.Slice(files, func(i, k int) bool { return files[i].Path < files[k].Path })
	return writeRecord(root, &record{Step: in.Step, Key: in.key, Summary: in.Summary, Files: files})
}

// plan says what every job installs where: files kept as they are, or the
// artifact's destinations, downloading it and taking an archive apart
// into the cache. An artifact installed before from the same release and
// pin, whose files are intact, is kept without touching the network.
func (in *Installer) plan(ctx context.Context, root *os.Root, old *record, hold *pins) ([]jobPlan, error) {
	kept := map[string][]file{}
	if old != nil {
		for _, f := range old.Files {
			kept[f.Artifact] = append(kept[f.Artifact], f)
		}
	}
	plans := make([]jobPlan, len(in.Jobs))
	var todo []int
	for i, j := range in.Jobs {
		if prev := kept[j.Artifact.key()]; len(prev) > 0 && in.placed(j, prev) {
			if problem, err := verify(root, prev); err == nil && problem == "" {
				zerolog.Ctx(ctx).Debug().Str("artifact", j.Artifact.Name).Msg("already installed; kept")
				plans[i].keep = prev
				continue
			}
		}
		todo = append(todo, i)
	}
	err := budget.Each(ctx, len(todo), func(ctx context.Context, k int) (err error) {
		i := todo[k]
		plans[i], err = in.prepare(ctx, in.Jobs[i], hold)
		return err
	})
	return plans, err
}

// placed reports whether previously installed files of an artifact are
// where the job installs them now (the plan may have moved installDir).
func (in *Installer) placed(j Job, files []file) bool {
	for _, f := range files {
		if j.Pick == nil && f.Path != j.Dest {
			return false
		}
		if j.Pick != nil && path.Dir(f.Path) != in.InstallDir {
			return false
		}
	}
	return true
}

// claim makes each path's artifact its owner: one artifact per path within
// the step, and the machine's claims across steps, taken before anything
// is written, so a conflicting artifact never overwrites its rival. It
// returns the paths the step installs.
func (in *Installer) claim(ctx context.Context, root *os.Root, plans []jobPlan) (map[string]bool, error) {
	owner := map[string]int{}
	var paths []string
	for i, pl := range plans {
		for _, p := range pl.dests() {
			if k, dup := owner[p]; dup {
				return nil, retry.Permanent(&claims.ConflictError{Path: p, Owner: in.Jobs[k].Artifact.Name, Want: in.Jobs[i].Artifact.Name})
			}
			owner[p] = i
			paths = append(paths, p)
		}
	}
	keep := map[string]bool{}
	for _, p := range paths {
		keep[p] = true
	}
	claims.Release(root, in.Step, keep)
	// A claim's owner is live unless the plan being run is known and has
	// no step of that id.
	inPlan := func(step string) bool {
		has, known := engine.PlanHasStep(ctx, step)
		return has || !known
	}
	sort.Strings(paths)
	for _, p := range paths {
		j := in.Jobs[owner[p]]
		c := claims.Claim{Path: p, Step: in.Step, Artifact: j.Label}
		if err := claims.Take(ctx, root, c, fmt.Sprintf("%s (step %s)", j.Artifact.Name, in.Step), inPlan); err != nil {
			return nil, fmt.Errorf("install %s: %w", j.Artifact.Name, err)
		}
	}
	return keep, nil
}

// installAll installs the planned jobs and returns every file the step
// installs, kept ones included. An entry a concurrent prune removed meanwhile
// (another run sharing the cache) is fetched again, once.
func (in *Installer) installAll(ctx context.Context, root *os.Root, plans []jobPlan, hold *pins) ([]file, error) {
	var files []file
	var todo []int
	for i, pl := range plans {
		if pl.keep != nil {
			files = append(files, pl.keep...)
		} else {
			todo = append(todo, i)
		}
	}
	installed := make([][]file, len(plans))
	err := budget.Each(ctx, len(todo), func(ctx context.Context, k int) error {
		i := todo[k]
		j := in.Jobs[i]
		fs, err := in.install(ctx, root, j, plans[i])
		if errors.Is(err, errEntryGone) {
			pl, perr := in.prepare(ctx, j, hold)
			if perr != nil {
				return perr
			}
			fs, err = in.install(ctx, root, j, pl)
		}
		installed[i] = fs
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, fs := range installed {
		files = append(files, fs...)
	}
	return files, nil
}
