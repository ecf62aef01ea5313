package artifact

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/budget"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
)

// Preflight groups the step's artifacts by the preflight check each job
// belongs to, in the order of the jobs.
func (in *Installer) Preflight() []engine.Check {
	var out []engine.Check
	byName := map[string]*check{}
	for _, j := range in.Jobs {
		c, ok := byName[j.Check]
		if !ok {
			c = &check{name: j.Check, in: in}
			byName[j.Check] = c
			out = append(out, c)
		}
		c.arts = append(c.arts, j.Artifact)
	}
	return out
}

// check probes that artifacts can be downloaded, without downloading
// them: HEAD, falling back to a one-byte ranged GET. Its time is the
// context's: the engine gives every check CheckTimeout.
type check struct {
	name string
	arts []Artifact
	in   *Installer
}

func (c *check) Name() string { return c.name }

// Run probes the artifacts, as many at once as the budget allows. An
// artifact not probed before the check's time ran out says so.
func (c *check) Run(ctx context.Context) []engine.CheckResult {
	left := fetch.TimeLeft(ctx, engine.CheckTimeout)
	out := make([]engine.CheckResult, len(c.arts))
	done := make([]bool, len(c.arts))
	_ = budget.Each(ctx, len(c.arts), func(ctx context.Context, i int) error {
		out[i], done[i] = c.probe(ctx, c.arts[i], left), true
		return nil
	}) // an error is ctx's: the artifacts it kept from being probed say so below
	for i, a := range c.arts {
		if !done[i] {
			out[i] = engine.CheckResult{Name: c.name, Target: a.Name, Severity: engine.SeverityError, Message: from(a) + fetch.Describe(ctx.Err(), left)}
		}
	}
	return out
}

func (c *check) probe(ctx context.Context, a Artifact, left time.Duration) engine.CheckResult {
	r := engine.CheckResult{Name: c.name, Target: a.Name, Severity: engine.SeverityOK}
	// Already cached (its checksum is remembered and the content is
	// there): nothing will be downloaded, so nothing is asked.
	if sum, ok := c.in.cachedSum(a); ok && c.in.Cache.Has(sum) {
		r.Message = a.Name + ": in the cache; no download needed"
		return r
	}
	if m := c.in.Mirror; m != nil {
		n, err := mirror.ArtifactName(a.URL)
		if err == nil {
			_, err = m.File(ctx, n)
		}
		switch {
		case err == nil:
			r.Message = a.Name + ": in the mirror " + m.Dest.String()
			return r
		case !c.in.fallBack(err):
			r.Severity = engine.SeverityError
			r.Message = a.Name + ": " + mirrorProblem(err, m.Dest.String(), left)
			return r
		}
	}
	r.Message = from(a) + "reachable"
	if err := c.in.Fetch.Reachable(ctx, a.URL); err != nil {
		r.Severity, r.Message = engine.SeverityError, from(a)+fetch.Describe(err, left)
	}
	return r
}

// mirrorProblem words why the mirror cannot give an artifact.
func mirrorProblem(err error, dest string, left time.Duration) string {
	if errors.Is(err, mirror.ErrMissing) || errors.Is(err, mirror.ErrNotAnArtifact) {
		return err.Error()
	}
	return "the mirror " + dest + ": " + fetch.Describe(err, left)
}

// from starts a message about a: it names the artifact and the host it
// comes from, so that one can act on it; never the path, query or
// credentials.
func from(a Artifact) string { return a.Name + " from " + hostOf(a.URL) + ": " }

// hostOf is the host[:port] of a URL, for messages: never its path, query
// or credentials.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "an unparsable URL"
	case u.Scheme == "file":
		return "a local file"
	}
	return u.Host
}
