package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// jobPlan is what one job installs: files kept as they are, or a cached
// artifact (digest) and, for an archive, its chosen members.
type jobPlan struct {
	keep    []file
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

// errEntryGone: a cache entry the install was prepared with is gone.
var errEntryGone = errors.New("cache entry removed meanwhile")

// prepare puts the job's artifact in the cache (and an archive's members)
// and says where it goes.
//
// An entry a concurrent prune removes between two of these steps is
// fetched again, once.
func (in *Installer) prepare(ctx context.Context, j Job, hold *pins) (jobPlan, error) {
	pl, err := in.prepareOnce(ctx, j, hold)
	if errors.Is(err, errEntryGone) {
		pl, err = in.prepareOnce(ctx, j, hold)
	}
	return pl, err
}

func (in *Installer) prepareOnce(ctx context.Context, j Job, hold *pins) (jobPlan, error) {
	want, err := in.ensureCached(ctx, j.Artifact, hold)
	if err != nil {
		return jobPlan{}, err
	}
	if j.Pick == nil {
		return jobPlan{digest: want, dest: j.Dest}, nil
	}
	members, err := in.extracted(ctx, j, want, hold)
	if err != nil {
		return jobPlan{}, err
	}
	return jobPlan{digest: want, members: members}, nil
}

// Prefetch downloads and verifies the step's artifacts into the cache and
// stages the files to install beside the machine (see stage.go). It needs
// nothing from the machine, so the engine runs it while the workspace is
// still being unpacked.
func (in *Installer) Prefetch(ctx context.Context) error {
	in.openStage(ctx)
	installed := in.installedArtifacts()
	return budget.Each(ctx, len(in.Jobs), func(ctx context.Context, i int) error {
		j := in.Jobs[i]
		if installed[j.Artifact.key()] {
			return nil // likely kept as it is; Apply checks its files
		}
		sum, err := in.ensureCached(ctx, j.Artifact, nil)
		if err != nil {
			return err
		}
		// What the install will put in the machine is in the cache now,
		// and perhaps was already (a second machine): stage it beside the
		// machine meanwhile, so the install, which waits for the rootfs,
		// is a rename.
		if j.Pick == nil {
			in.stageAll(ctx, []string{sum})
			return nil
		}
		members, err := in.extracted(ctx, j, sum, nil)
		digests := make([]string, len(members))
		for k, m := range members {
			digests[k] = m.SHA256
		}
		in.stageAll(ctx, digests)
		return err
	})
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
func (in *Installer) ensureCached(ctx context.Context, a Artifact, hold *pins) (string, error) {
	want, remembered, err := in.expectedSum(ctx, a)
	if err != nil {
		return "", err
	}
	if !in.Cache.Has(want) {
		if err := in.download(ctx, a, want, remembered, hold); err != nil {
			return "", err
		}
	}
	if hold != nil && !hold.pinned(want) && !hold.pin(in.Cache, want) {
		return "", fmt.Errorf("download %s: %w", a.Name, errEntryGone)
	}
	if !remembered && a.Pinned == "" {
		// Content with this digest is in the cache (it verified against the
		// document): remember the checksum, releases do not change.
		if err := in.Cache.PutSum(sumKey(a), want); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("could not remember a checksum in the cache")
		}
	}
	return want, nil
}

// download fetches the artifact into the cache, stored (pinned in hold)
// only if it has the digest want.
func (in *Installer) download(ctx context.Context, a Artifact, want string, remembered bool, hold *pins) error {
	e, err := in.Cache.Create()
	if err != nil {
		return err
	}
	if err := in.fetchFrom(ctx, a, want, e); err != nil {
		e.Abort()
		return err
	}
	var mm *cache.MismatchError
	if err := hold.commit(e, want); errors.As(err, &mm) {
		if remembered {
			// Not what was verified before (the entry was pruned and the
			// release changed since): ask the publisher again next time.
			in.Cache.ForgetSum(sumKey(a))
		}
		return retry.Permanent(fmt.Errorf("download %s: verify sha256: got %s, want %s; nothing was installed", a.Name, mm.Got, want))
	} else if err != nil {
		return err
	}
	in.fresh.Store(want, true)
	return nil
}

// sumKey names an artifact's published checksum in the cache.
func sumKey(a Artifact) string { return a.SumURL + "#" + a.SumFile }

// expectedSum is the pinned digest, or the one from the published checksum
// document: remembered in the cache when an artifact verified against it
// before, fetched otherwise.
func (in *Installer) expectedSum(ctx context.Context, a Artifact) (sum string, remembered bool, err error) {
	if sum, ok := in.cachedSum(a); ok {
		return sum, a.Pinned == "", nil
	}
	if in.Mirror != nil {
		sum, err := in.mirrorSum(ctx, a)
		if !in.fallBack(err) {
			return sum, false, err
		}
	}
	doc, err := in.Fetch.GetSmall(ctx, a.SumURL)
	if err != nil {
		return "", false, fmt.Errorf("download %s: fetch published checksum: %w", a.Name, err)
	}
	sum, err = fetch.ParseChecksum(doc, a.SumFile)
	if err != nil {
		return "", false, retry.Permanent(fmt.Errorf("download %s: %w", a.Name, err))
	}
	return sum, false, nil
}

// cachedSum is the artifact's expected digest when it is known without the
// network: pinned, or a published checksum remembered in the cache.
func (in *Installer) cachedSum(a Artifact) (string, bool) {
	if a.Pinned != "" {
		return a.Pinned, true
	}
	return in.Cache.Sum(sumKey(a))
}

// fetchFrom downloads the artifact into e: from the mirror when there is
// one (then from upstream only when the mirror lacks it and fallback is
// allowed), from upstream otherwise.
func (in *Installer) fetchFrom(ctx context.Context, a Artifact, want string, e *cache.Entry) error {
	if in.Mirror != nil {
		err := in.fetchMirror(ctx, a, want, e)
		if !in.fallBack(err) {
			return err
		}
		if err := restart(e); err != nil {
			return err
		}
	}
	return in.fetch(ctx, a, e)
}

// progress tracks one artifact's transfer, from its first bytes.
type progress struct {
	ctx  context.Context
	name string
	tr   engine.Tracker
}

func (p *progress) add(total int64, n int) {
	if p.tr == nil {
		p.tr = engine.ProgressFrom(p.ctx).Track(p.name, total)
	}
	p.tr.Add(int64(n))
}

func (p *progress) done() {
	if p.tr != nil {
		p.tr.Done()
	}
}

func (in *Installer) fetch(ctx context.Context, a Artifact, w io.Writer) error {
	zerolog.Ctx(ctx).Debug().Str("phase", "download").Str("artifact", a.Name).Msg("downloading")
	pr := &progress{ctx: ctx, name: a.Name}
	defer pr.done()
	_, err := in.Fetch.Fetch(ctx, a.URL, w, pr.add)
	if err != nil {
		return fmt.Errorf("download %s: %w", a.Name, err)
	}
	return nil
}

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
	return slices.Contains(h.digests, digest)
}

func (h *pins) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.list {
		p.Release()
	}
	h.list = nil
}
