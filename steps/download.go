package steps

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// job is one artifact of a download step: a binary installed as it is
// (dest), or an archive whose chosen members are installed (pick).
type job struct {
	art artifact
	// label names the artifact in the machine's claims on paths: stable
	// across versions (kubelet, containerd, cni-plugins).
	label string
	// check is the preflight check the artifact belongs to: its step's, so
	// that ignoring it covers every download of the step.
	check   string
	dest    string                                     // direct binary: path inside the rootfs
	pick    func(member string) (dest string, ok bool) // archive: which members go where
	require []string                                   // archive: members that must be present (by dest base name)
	// executablesOnly skips members without an execute bit (LICENSE, README).
	executablesOnly bool
	// selection names what pick and executablesOnly choose, so the cached
	// list of an archive's members is only reused for the same choice.
	selection string
}

// jobsKey digests what decides the installed files: each artifact's
// identity, where its files go and which members are chosen. Sources
// (URLs) are not in it; see artifact.key.
func (d *downloads) jobsKey() string {
	type jobKey struct {
		Artifact, Dest, Selection string
		Require                   []string
		ExecutablesOnly           bool
	}
	keys := []any{d.installDir}
	for _, j := range d.jobs {
		keys = append(keys, jobKey{j.art.key(), j.dest, j.selection, j.require, j.executablesOnly})
	}
	return stateKey(keys)
}

// downloads is the shared machinery of download-kube, -cri and -cni.
type downloads struct {
	id         string
	machineDir string
	installDir string
	key        string // stateKey of the desired state
	summary    string
	jobs       []job
	opts       *Options
}

func (d *downloads) Check(_ context.Context) (engine.Change, error) {
	root, err := openMachine(d.machineDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return engine.NeedsChange("machine directory does not exist yet"), nil
		}
		return engine.Change{}, err
	}
	defer root.Close()
	st, err := readState(root, d.id)
	if err != nil {
		return engine.Change{}, err
	}
	switch {
	case st == nil:
		return engine.NeedsChange("not installed: " + d.summary), nil
	case st.Key != d.key && st.Summary == d.summary:
		return engine.NeedsChange(fmt.Sprintf("installed %s with other settings; the plan changes the install directory, a pinned digest or the files chosen", d.summary)), nil
	case st.Key != d.key:
		return engine.NeedsChange(fmt.Sprintf("installed %s; plan wants %s", st.Summary, d.summary)), nil
	}
	problem, err := st.verify(root)
	if err != nil {
		return engine.Change{}, err
	}
	if problem != "" {
		return engine.NeedsChange(problem), nil
	}
	return engine.UpToDate("installed: " + d.summary), nil
}

func (d *downloads) Apply(ctx context.Context) error {
	root, err := openMachine(d.machineDir)
	if err != nil {
		return err
	}
	defer root.Close()
	d.tidy(root)
	old, err := readState(root, d.id)
	if err != nil {
		return err
	}
	kept := map[string][]fileState{}
	if old != nil {
		for _, f := range old.Files {
			kept[f.Artifact] = append(kept[f.Artifact], f)
		}
	}
	// The old record goes first: if we crash between here and the new
	// record, the next Check sees "not installed" and repairs.
	if err := root.Remove(statePath(d.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove install record: %w", err)
	}

	// First what every job installs where: files kept as they are, or the
	// artifact's destinations (downloading it and taking an archive apart
	// into the cache). Nothing in the machine changes yet.
	plans := make([]jobPlan, len(d.jobs))
	hold := &pins{}
	defer hold.release()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, j := range d.jobs {
		// An artifact installed before from the same URL and pin, whose
		// files are intact, is kept without touching the network.
		if prev := kept[j.art.key()]; len(prev) > 0 && d.placed(j, prev) {
			if problem, err := verifyFiles(root, prev); err == nil && problem == "" {
				zerolog.Ctx(ctx).Debug().Str("artifact", j.art.Name).Msg("already installed; kept")
				plans[i].keep = prev
				continue
			}
		}
		g.Go(func() (err error) {
			plans[i], err = d.prepare(gctx, j, hold)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	// Then the owners: one artifact per path within the step, and the
	// machine's claims across steps (taken before anything is written, so a
	// conflicting artifact never overwrites its rival).
	owner := map[string]int{}
	var paths []string
	for i, pl := range plans {
		for _, p := range pl.dests() {
			if k, dup := owner[p]; dup {
				return engine.Permanent(&ConflictError{Path: p, Owner: d.jobs[k].art.Name, Want: d.jobs[i].art.Name})
			}
			owner[p] = i
			paths = append(paths, p)
		}
	}
	keep := map[string]bool{}
	for _, p := range paths {
		keep[p] = true
	}
	releaseClaims(root, d.id, keep)
	sort.Strings(paths)
	for _, p := range paths {
		j := d.jobs[owner[p]]
		if err := claimPath(ctx, root, p, d.id, j.label, fmt.Sprintf("%s (step %s)", j.art.Name, d.id)); err != nil {
			return fmt.Errorf("install %s: %w", j.art.Name, err)
		}
	}

	var files []fileState
	for _, pl := range plans {
		files = append(files, pl.keep...)
	}
	var mu sync.Mutex
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, j := range d.jobs {
		if plans[i].keep != nil {
			continue
		}
		g.Go(func() error {
			fs, err := d.install(gctx, root, j, plans[i])
			if errors.Is(err, errEntryGone) {
				// Pruned meanwhile by another run sharing the cache:
				// fetch it again, once.
				pl, perr := d.prepare(gctx, j, hold)
				if perr != nil {
					return perr
				}
				fs, err = d.install(gctx, root, j, pl)
			}
			if err != nil {
				return err
			}
			mu.Lock()
			files = append(files, fs...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if old != nil {
		d.removeObsolete(ctx, root, old.Files, keep)
	}
	sort.Slice(files, func(i, k int) bool { return files[i].Path < files[k].Path })
	return writeState(root, &installState{Step: d.id, Key: d.key, Summary: d.summary, Files: files})
}

// removeObsolete removes the files this step installed before and does not
// install now (a binary dropped from the plan, a member a new release no
// longer ships, an old installDir), so the machine is what a fresh
// provisioning with this plan makes. Only files still exactly as installed
// are removed; one changed since is left, and said so. It runs before the
// new record is written: a crash in between is repaired by the next apply.
func (d *downloads) removeObsolete(ctx context.Context, root *os.Root, installed []fileState, keep map[string]bool) {
	log := zerolog.Ctx(ctx)
	for _, f := range installed {
		if keep[f.Path] {
			continue
		}
		if problem, err := verifyFiles(root, []fileState{f}); err != nil || problem != "" {
			if problem != "" && !strings.HasSuffix(problem, " is missing") {
				log.Warn().Str("path", f.Path).Str("why", problem).Msg("no longer installed by this step, but changed since: left in place")
			}
			continue
		}
		if err := root.Remove(f.Path); err != nil {
			log.Warn().Err(err).Str("path", f.Path).Msg("could not remove a file this step no longer installs")
			continue
		}
		log.Info().Str("path", f.Path).Msg("removed: no longer installed by this step")
	}
}

// jobPlan is what one job installs: files kept as they are, or a cached
// artifact (digest) and, for an archive, its chosen members.
type jobPlan struct {
	keep    []fileState
	digest  string
	dest    string   // a binary installed as it is
	members []member // an archive's chosen members
}

// dests are the paths the job installs.
func (p jobPlan) dests() []string {
	var out []string
	for _, f := range p.keep {
		out = append(out, f.Path)
	}
	if p.dest != "" {
		out = append(out, p.dest)
	}
	for _, m := range p.members {
		out = append(out, m.Dest)
	}
	return out
}

// prepare puts the job's artifact in the cache (and an archive's members)
// and says where it goes.
//
// An entry a concurrent prune removes between two of these steps is
// fetched again, once.
func (d *downloads) prepare(ctx context.Context, j job, hold *pins) (jobPlan, error) {
	pl, err := d.prepareOnce(ctx, j, hold)
	if errors.Is(err, errEntryGone) {
		pl, err = d.prepareOnce(ctx, j, hold)
	}
	return pl, err
}

func (d *downloads) prepareOnce(ctx context.Context, j job, hold *pins) (jobPlan, error) {
	want, err := d.ensureCached(ctx, j.art, hold)
	if err != nil {
		return jobPlan{}, err
	}
	if j.pick == nil {
		return jobPlan{digest: want, dest: j.dest}, nil
	}
	members, err := d.extracted(ctx, j, want, hold)
	if err != nil {
		return jobPlan{}, err
	}
	return jobPlan{digest: want, members: members}, nil
}

// install copies one prepared job from the cache into the machine.
func (d *downloads) install(ctx context.Context, root *os.Root, j job, pl jobPlan) ([]fileState, error) {
	zerolog.Ctx(ctx).Debug().Str("phase", "install").Str("artifact", j.art.Name).Msg("installing")
	if pl.members != nil {
		return d.installMembers(ctx, root, j, pl.digest, pl.members)
	}
	s, err := d.copyFromCache(root, pl.dest, pl.digest, j.art.Name)
	if err != nil {
		return nil, err
	}
	if err := s.Commit(0o755); err != nil {
		return nil, err
	}
	fs, err := recordFile(root, pl.dest, pl.digest, fetch.Redact(j.art.URL))
	if err != nil {
		return nil, err
	}
	fs.Artifact = j.art.key()
	zerolog.Ctx(ctx).Info().Str("artifact", j.art.Name).Str("sha256", pl.digest).Str("path", pl.dest).Msg("installed")
	return []fileState{fs}, nil
}

// Prefetch downloads and verifies the step's artifacts into the cache. It
// needs nothing from the machine, so the engine runs it while the
// workspace is still being unpacked.
func (d *downloads) Prefetch(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, j := range d.jobs {
		g.Go(func() error {
			sum, err := d.ensureCached(gctx, j.art, nil)
			if err != nil || j.pick == nil {
				return err
			}
			_, err = d.extracted(gctx, j, sum, nil)
			return err
		})
	}
	return g.Wait()
}

// ensureCached makes sure the artifact is in the cache and returns its
// digest: the pin, or the published checksum. A download that does not
// match is discarded before anything could use it.
//
// A published checksum is remembered only once an artifact verified
// against it: a wrong document (a mirror caught mid-sync) fails this
// attempt and is fetched again by the next, never kept.
//
// With hold, the entry is pinned in it: a prune by another run leaves it
// alone until the install is done.
func (d *downloads) ensureCached(ctx context.Context, a artifact, hold *pins) (string, error) {
	want, remembered, err := d.expectedSum(ctx, a)
	if err != nil {
		return "", err
	}
	if !d.opts.Cache.Has(want) {
		e, err := d.opts.Cache.Create()
		if err != nil {
			return "", err
		}
		if err := d.fetch(ctx, a, e); err != nil {
			e.Abort()
			return "", err
		}
		var mm *cache.MismatchError
		if err := hold.commit(e, want); errors.As(err, &mm) {
			if remembered {
				// Not what was verified before (the entry was pruned and the
				// release changed since): ask the publisher again next time.
				d.opts.Cache.ForgetSum(sumKey(a))
			}
			return "", mismatch(a, mm.Got, want)
		} else if err != nil {
			return "", err
		}
	}
	if hold != nil && !hold.pinned(want) && !hold.pin(d.opts.Cache, want) {
		return "", fmt.Errorf("download %s: %w", a.Name, errEntryGone)
	}
	if !remembered && a.Pinned == "" {
		// Content with this digest is in the cache (it verified against the
		// document): remember the checksum, releases do not change.
		if err := d.opts.Cache.PutSum(sumKey(a), want); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("could not remember a checksum in the cache")
		}
	}
	return want, nil
}

func mismatch(a artifact, got, want string) error {
	return engine.Permanent(fmt.Errorf("download %s: verify sha256: got %s, want %s; nothing was installed", a.Name, got, want))
}

// sumKey names an artifact's published checksum in the cache.
func sumKey(a artifact) string { return a.SumURL + "#" + a.SumFile }

// expectedSum is the pinned digest, or the one from the published checksum
// document: remembered in the cache when an artifact verified against it
// before, fetched otherwise.
func (d *downloads) expectedSum(ctx context.Context, a artifact) (sum string, remembered bool, err error) {
	if a.Pinned != "" {
		return a.Pinned, false, nil
	}
	if sum, ok := d.opts.Cache.Sum(sumKey(a)); ok {
		return sum, true, nil
	}
	doc, err := d.opts.Fetch.GetSmall(ctx, a.SumURL)
	if err != nil {
		return "", false, fmt.Errorf("download %s: fetch published checksum: %w", a.Name, err)
	}
	sum, err = fetch.ParseChecksum(doc, a.SumFile)
	if err != nil {
		return "", false, engine.Permanent(fmt.Errorf("download %s: %w", a.Name, err))
	}
	return sum, false, nil
}

func (d *downloads) fetch(ctx context.Context, a artifact, w io.Writer) error {
	zerolog.Ctx(ctx).Debug().Str("phase", "download").Str("artifact", a.Name).Msg("downloading")
	var tr engine.Tracker
	defer func() {
		if tr != nil {
			tr.Done()
		}
	}()
	_, err := d.opts.Fetch.Fetch(ctx, a.URL, w, func(total int64, n int) {
		if tr == nil {
			tr = engine.ProgressFrom(ctx).Track(a.Name, total)
		}
		tr.Add(int64(n))
	})
	if err != nil {
		return fmt.Errorf("download %s: %w", a.Name, err)
	}
	return nil
}

// member is a chosen archive member: where it goes and its content.
type member struct {
	Name   string `json:"name"` // in the archive
	Dest   string `json:"dest"` // inside the machine
	SHA256 string `json:"sha256"`
}

// scanArchive reads a gzipped tar archive as untrusted input and hands each
// chosen member to sink. Absolute names, "..", backslashes and NUL are
// refused, a chosen member must be a regular file, and every required
// member must be there. It reads r to the end (where the cache verifies the
// archive's digest).
func scanArchive(ctx context.Context, r io.Reader, j job, sink func(m member, content io.Reader) error) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return engine.Permanent(fmt.Errorf("extract %s: %w", j.art.Name, err))
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	found := map[string]bool{}
	byDest := map[string]string{} // destination -> member name as written
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return engine.Permanent(fmt.Errorf("extract %s: %w", j.art.Name, err))
		}
		name, err := memberName(hdr.Name)
		if err != nil {
			return engine.Permanent(fmt.Errorf("extract %s: %w", j.art.Name, err))
		}
		dest, ok := j.pick(name)
		if !ok {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			if hdr.Typeflag == tar.TypeDir {
				continue
			}
			return engine.Permanent(fmt.Errorf("extract %s: member %s is not a regular file (type %q); refusing", j.art.Name, name, hdr.Typeflag))
		}
		if j.executablesOnly && hdr.Mode&0o111 == 0 {
			continue // a document (LICENSE, README), not a program
		}
		if first, dup := byDest[dest]; dup {
			return engine.Permanent(fmt.Errorf("extract %s: members %s and %s both install %s; refusing an ambiguous archive", j.art.Name, first, hdr.Name, dest))
		}
		byDest[dest] = hdr.Name
		if err := sink(member{Name: name, Dest: dest}, tr); err != nil {
			return err
		}
		found[path.Base(dest)] = true
		n++
	}
	// Read to the end: the cache verifies the archive's digest there.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("extract %s: %w", j.art.Name, err)
	}
	var missing []string
	for _, req := range j.require {
		if !found[req] {
			missing = append(missing, req)
		}
	}
	if n == 0 {
		missing = append(missing, "any wanted file")
	}
	if len(missing) > 0 {
		return engine.Permanent(fmt.Errorf("extract %s: the archive lacks %s; nothing was installed", j.art.Name, strings.Join(missing, ", ")))
	}
	return nil
}

// extracted returns the archive's chosen members as cache entries, taking
// them apart once (during prefetch, while the workspace is unpacked) and
// remembering the list in the cache.
func (d *downloads) extracted(ctx context.Context, j job, archive string, hold *pins) ([]member, error) {
	key := "members:" + j.selection + ":" + archive
	var members []member
	if b, ok := d.opts.Cache.Index(key); ok && json.Unmarshal(b, &members) == nil && len(members) > 0 {
		intact := true
		for _, m := range members {
			if hold != nil {
				intact = intact && hold.pin(d.opts.Cache, m.SHA256)
			} else {
				intact = intact && d.opts.Cache.Has(m.SHA256)
			}
		}
		if intact {
			return members, nil
		}
		members = nil
	}
	rc, _, err := d.opts.Cache.Open(archive)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("extract %s: %w", j.art.Name, errEntryGone)
	}
	if err != nil {
		return nil, fmt.Errorf("extract %s: open cache entry: %w", j.art.Name, err)
	}
	err = scanArchive(ctx, rc, j, func(m member, content io.Reader) error {
		e, err := d.opts.Cache.Create()
		if err != nil {
			return err
		}
		if _, err := io.Copy(e, content); err != nil {
			e.Abort()
			return fmt.Errorf("extract %s: %s: %w", j.art.Name, m.Name, err)
		}
		m.SHA256 = e.Digest()
		members = append(members, m)
		return hold.commit(e, m.SHA256)
	})
	// Close verifies what the scan did not read: a damaged entry, not the
	// archive, is then the cause of a failure, and a retry downloads it.
	if cerr := rc.Close(); errors.Is(cerr, cache.ErrCorrupt) && !errors.Is(err, cache.ErrCorrupt) {
		return nil, fmt.Errorf("extract %s: %w; removed it, a retry downloads it again", j.art.Name, cerr)
	}
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(members)
	if err := d.opts.Cache.PutIndex(key, b); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("could not remember an archive's members in the cache")
	}
	return members, nil
}

// installMembers copies the archive's chosen members from the cache into
// the machine. Every member is staged first and committed only when all
// are staged, so a failure installs none of them.
func (d *downloads) installMembers(ctx context.Context, root *os.Root, j job, archive string, members []member) ([]fileState, error) {
	var pending []*atomicfile.File
	abort := func() {
		for _, s := range pending {
			s.Abort()
		}
	}
	for _, m := range members {
		s, err := d.copyFromCache(root, m.Dest, m.SHA256, j.art.Name+": "+m.Name)
		if err != nil {
			abort()
			return nil, err
		}
		pending = append(pending, s)
	}
	var files []fileState
	for i, s := range pending {
		if err := s.Commit(0o755); err != nil {
			for _, rest := range pending[i+1:] {
				rest.Abort()
			}
			return nil, err
		}
		fs, err := recordFile(root, s.Name(), s.Digest(), fetch.Redact(j.art.URL)+"#"+members[i].Name)
		if err != nil {
			return nil, err
		}
		fs.Artifact = j.art.key()
		files = append(files, fs)
	}
	zerolog.Ctx(ctx).Info().Str("artifact", j.art.Name).Str("sha256", archive).Int("files", len(files)).Msg("installed")
	return files, nil
}

// memberName validates and normalises an archive member name.
func memberName(raw string) (string, error) {
	switch {
	case strings.ContainsAny(raw, "\\\x00"):
		return "", fmt.Errorf("member %q: backslash or NUL in name; refusing", raw)
	case strings.HasPrefix(raw, "/"):
		return "", fmt.Errorf("member %q: absolute path; refusing", raw)
	}
	name := path.Clean(strings.TrimPrefix(raw, "./"))
	if name == ".." || strings.HasPrefix(name, "../") {
		return "", fmt.Errorf("member %q: escapes the archive with ..; refusing", raw)
	}
	return name, nil
}

// Resources: the machine directory the files go into.
func (d *downloads) Resources() []string { return []string{d.machineDir} }

// cachedSum is the artifact's expected digest when it is known without the
// network: pinned, or a published checksum remembered in the cache.
func (d *downloads) cachedSum(a artifact) (string, bool) {
	if a.Pinned != "" {
		return a.Pinned, true
	}
	return d.opts.Cache.Sum(sumKey(a))
}

// Tidy removes this step's temporary files left by an interrupted run.
func (d *downloads) Tidy(context.Context) error {
	root, err := openMachine(d.machineDir)
	if err != nil {
		return nil // no machine yet: nothing to tidy
	}
	defer root.Close()
	d.tidy(root)
	return nil
}

func (d *downloads) tidy(root *os.Root) {
	atomicfile.RemoveTemps(root, d.installDir, d.id)
	atomicfile.RemoveTemps(root, StateDir, d.id)
	atomicfile.RemoveTemps(root, claimsDir, d.id)
}

// copyFromCache stages a copy of a cache entry at dest inside the machine
// and checks the copy's digest (the one hash of the install). A damaged
// entry is removed, so a retry downloads it again.
// pins are the cache entries an apply is about to install, kept from a
// concurrent prune until it is done. A nil *pins pins nothing.
type pins struct {
	mu      sync.Mutex
	list    []*cache.Pin
	digests []string // stored pinned by commit
}

// pin pins digest's entry and reports whether it is there.
func (h *pins) pin(c *cache.Cache, digest string) bool {
	if h == nil {
		return false
	}
	p, err := c.Pin(digest)
	if err != nil {
		return false
	}
	h.mu.Lock()
	h.list = append(h.list, p)
	h.mu.Unlock()
	return true
}

// commit stores an entry, pinned when h is set.
func (h *pins) commit(e *cache.Entry, digest string) error {
	if h == nil {
		return e.Commit(digest)
	}
	p, err := e.CommitPinned(digest)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.list = append(h.list, p)
	h.digests = append(h.digests, digest)
	h.mu.Unlock()
	return nil
}

// pinned reports whether digest was stored pinned by this h.
func (h *pins) pinned(digest string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return contains(h.digests, digest)
}

func (h *pins) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.list {
		p.Release()
	}
	h.list = nil
}

// errEntryGone: a cache entry the install was prepared with is gone.
var errEntryGone = errors.New("cache entry removed meanwhile")

func (d *downloads) copyFromCache(root *os.Root, dest, digest, what string) (*atomicfile.File, error) {
	f, err := d.opts.Cache.OpenUnverified(digest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("install %s: %w", what, errEntryGone)
	}
	if err != nil {
		return nil, fmt.Errorf("install %s: open cache entry: %w", what, err)
	}
	defer f.Close()
	s, err := atomicfile.Create(root, dest, d.id)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(s, f); err != nil {
		s.Abort()
		return nil, fmt.Errorf("install %s: %w", what, err)
	}
	if got := s.Digest(); got != digest {
		s.Abort()
		d.opts.Cache.Remove(digest)
		return nil, fmt.Errorf("install %s: %w (got %s, want %s); removed it, a retry downloads it again", what, cache.ErrCorrupt, got, digest)
	}
	return s, nil
}

// placed reports whether previously installed files of an artifact are
// where the job installs them now (the plan may have moved installDir).
func (d *downloads) placed(j job, files []fileState) bool {
	for _, f := range files {
		if j.pick == nil && f.Path != j.dest {
			return false
		}
		if j.pick != nil && path.Dir(f.Path) != d.installDir {
			return false
		}
	}
	return true
}
