package steps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// artifactCheck probes that artifacts can be downloaded, without
// downloading them: HEAD, falling back to a one-byte ranged GET. Its time
// is the context's: the engine gives every check CheckTimeout.
type artifactCheck struct {
	name string
	arts []artifact
	d    *downloads
}

func (c artifactCheck) Name() string { return c.name }

func (c artifactCheck) Run(ctx context.Context) []engine.CheckResult {
	budget := fetch.TimeLeft(ctx, engine.CheckTimeout)
	out := make([]engine.CheckResult, len(c.arts))
	done := make(chan struct{}, len(c.arts))
	for i, a := range c.arts {
		go func() {
			defer func() { done <- struct{}{} }()
			// The message names the artifact and the host it comes from, so
			// that one can act on it; never the path, query or credentials.
			prefix := a.Name + " from " + hostOf(a.URL) + ": "
			r := engine.CheckResult{Name: c.name, Target: a.Name, Severity: engine.SeverityOK, Message: prefix + "reachable"}
			// Already cached (its checksum is remembered and the content is
			// there): nothing will be downloaded, so nothing is asked.
			if sum, ok := c.d.cachedSum(a); ok && c.d.opts.Cache.Has(sum) {
				r.Message = a.Name + ": in the cache; no download needed"
				out[i] = r
				return
			}
			if err := c.d.opts.Fetch.Reachable(ctx, a.URL); err != nil {
				r.Severity, r.Message = engine.SeverityError, prefix+fetch.Describe(err, budget)
			}
			out[i] = r
		}()
	}
	for range c.arts {
		<-done
	}
	return out
}

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

// checks groups the step's artifacts by the preflight check each belongs
// to, in the order of the jobs.
func (d *downloads) Preflight() []engine.Check {
	var out []engine.Check
	byName := map[string]int{}
	for _, j := range d.jobs {
		i, ok := byName[j.check]
		if !ok {
			i = len(out)
			byName[j.check] = i
			out = append(out, artifactCheck{name: j.check, d: d})
		}
		c := out[i].(artifactCheck)
		c.arts = append(c.arts, j.art)
		out[i] = c
	}
	return out
}

// imageCheck resolves the image's manifest for the platform without
// pulling layers. Its time is the context's (engine.CheckTimeout).
type imageCheck struct{ w *workspace }

func (imageCheck) Name() string { return imageCheckName }

func (c imageCheck) Run(ctx context.Context) []engine.CheckResult {
	budget := fetch.TimeLeft(ctx, engine.CheckTimeout)
	// The registry host, never the repository or tag.
	where := "OCI layout: "
	if c.w.ref.layoutPath == "" {
		where = "registry " + c.w.ref.ref.Context().RegistryStr() + ": "
	}
	r := engine.CheckResult{Name: c.Name(), Target: "image for machine " + c.w.machine, Severity: engine.SeverityOK}
	if st, _, err := c.w.inspect(ctx); err == nil && st == rootfsCurrent {
		r.Message = "machine already holds the plan's image; no pull needed"
		return []engine.CheckResult{r}
	}
	img, err := c.w.resolve(ctx)
	if err != nil {
		r.Severity, r.Message = engine.SeverityError, where+describeImageErr(err, budget)
		return []engine.CheckResult{r}
	}
	r.Message = where + "manifest for " + img.platform + " resolves"
	return []engine.CheckResult{r}
}

// describeImageErr explains why an image did not resolve, by the error's
// type: the registry's answer (status and error codes, never its free
// text, which may name the repository), a platform the image lacks, or a
// network failure.
func describeImageErr(err error, budget time.Duration) string {
	var te *transport.Error
	var pe *platformError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fetch.Describe(err, budget)
	case errors.As(err, &pe):
		return pe.Error()
	case errors.As(err, &te):
		msg := fmt.Sprintf("registry answered %d %s", te.StatusCode, http.StatusText(te.StatusCode))
		var codes []string
		for _, d := range te.Errors {
			codes = append(codes, string(d.Code))
		}
		if len(codes) > 0 {
			msg += " (" + strings.Join(codes, ", ") + ")"
		}
		return msg
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	}
	return fetch.Describe(err, budget)
}

// provisioningCheck: the machine dir, if it exists, is a readable
// directory, and the places rootfsctl will create files in are writable.
type provisioningCheck struct{ w *workspace }

func (provisioningCheck) Name() string { return provisioningCheckName }

// The preflight checks of ensure-workspace.
const (
	imageCheckName        = "oci-image-reachable"
	provisioningCheckName = "nspawn-machine-provisioning"
)

func (c provisioningCheck) Run(context.Context) []engine.CheckResult {
	res := func(target string, err error, ok string) engine.CheckResult {
		r := engine.CheckResult{Name: c.Name(), Target: target, Severity: engine.SeverityOK, Message: ok}
		if err != nil {
			r.Severity, r.Message = engine.SeverityError, err.Error()
		}
		return r
	}
	var out []engine.CheckResult
	md := c.w.dir
	if fi, err := os.Stat(md); err == nil {
		var problem error
		if !fi.IsDir() {
			problem = errors.New("machine directory exists and is not a directory")
		} else if d, err := os.Open(md); err != nil {
			problem = fmt.Errorf("machine directory is not readable: %s", fetch.Describe(err, 0))
		} else {
			names, err := d.Readdirnames(1)
			if err != nil && !errors.Is(err, io.EOF) {
				problem = fmt.Errorf("machine directory is not readable: %s", fetch.Describe(err, 0))
			} else if len(names) == 0 {
				problem = mountPointProblem(md) // only an unpack, into an empty one, trips over it
			}
			d.Close()
		}
		out = append(out, res("machine directory", problem, "exists and is readable"))
	}
	// nspawn refuses to start a machine whose bind source is missing.
	for _, src := range append(append([]string{}, c.w.binds...), c.w.devices...) {
		r := engine.CheckResult{Name: c.Name(), Target: "bind source " + src, Severity: engine.SeverityOK, Message: "exists"}
		if _, err := os.Stat(src); err != nil {
			r.Severity = engine.SeverityWarning
			r.Message = "does not exist on this host: systemd-nspawn will refuse to start the machine until it does"
		}
		out = append(out, r)
	}
	out = append(out, exposureResult(c.Name(), filepath.Dir(md)))
	for _, t := range []struct{ what, dir string }{
		{"machine directory parent", filepath.Dir(md)},
		{".nspawn directory", filepath.Dir(c.w.nspawn)},
		{"service drop-in directory", filepath.Dir(c.w.override)},
	} {
		out = append(out, res(t.what, writableAncestor(t.dir), "writable"))
	}
	return out
}

// exposureResult says whether other host users can reach the machine
// directory: they can when every directory from / down to its parent lets
// them through (search permission for others). Missing directories are
// created 0700, which stops them.
func exposureResult(check, parent string) engine.CheckResult {
	r := engine.CheckResult{Name: check, Target: "machine directory access", Severity: engine.SeverityOK}
	var dirs []string
	for d := parent; ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		fi, err := os.Stat(dirs[i])
		if err != nil {
			r.Message = fmt.Sprintf("%s will be created mode 0700: other users cannot reach the machine", dirs[i])
			return r
		}
		if fi.Mode().Perm()&0o001 == 0 {
			r.Message = fmt.Sprintf("%s stops other users: they cannot reach the machine", dirs[i])
			return r
		}
	}
	r.Severity = engine.SeverityWarning
	r.Message = fmt.Sprintf("every directory from / to %s lets other users through: they can run the machine's setuid programs and open its device nodes; make %s mode 0700 (as /var/lib/machines is)", parent, parent)
	return r
}

// writableAncestor probes the nearest existing ancestor of dir with a
// temporary file that is removed again.
func writableAncestor(dir string) error {
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			f, err := os.CreateTemp(dir, atomicfile.TempPrefix+"probe-")
			if err != nil {
				return fmt.Errorf("%s is not writable: %s", dir, fetch.Describe(err, 0))
			}
			f.Close()
			return os.Remove(f.Name())
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return errors.New("no existing ancestor directory")
		}
		dir = parent
	}
}

func (w *workspace) Preflight() []engine.Check {
	return []engine.Check{imageCheck{w}, provisioningCheck{w}}
}
