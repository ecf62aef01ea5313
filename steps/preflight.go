package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps/fetch"
)

// reachTimeout bounds each reachability probe.
const reachTimeout = 10 * time.Second

// artifactCheck probes that artifacts can be downloaded, without
// downloading them: HEAD, falling back to a one-byte ranged GET.
type artifactCheck struct {
	name string
	arts []artifact
	d    *downloads
}

func (c artifactCheck) Name() string { return c.name }

func (c artifactCheck) Run(ctx context.Context) []engine.CheckResult {
	out := make([]engine.CheckResult, len(c.arts))
	done := make(chan struct{}, len(c.arts))
	for i, a := range c.arts {
		go func() {
			defer func() { done <- struct{}{} }()
			cctx, cancel := context.WithTimeout(ctx, reachTimeout)
			defer cancel()
			r := engine.CheckResult{Name: c.name, Target: a.Name, Severity: engine.SeverityOK, Message: "reachable"}
			// Already cached (its checksum is remembered and the content is
			// there): nothing will be downloaded, so nothing is asked.
			if sum, ok := c.d.cachedSum(a); ok && c.d.opts.Cache.Has(sum) {
				r.Message = "in the cache; no download needed"
				out[i] = r
				return
			}
			if err := c.d.opts.Fetch.Reachable(cctx, a.URL); err != nil {
				r.Severity, r.Message = engine.SeverityError, "not reachable: "+describe(err)
			}
			out[i] = r
		}()
	}
	for range c.arts {
		<-done
	}
	return out
}

// describe explains an error without the URL, credentials or file
// contents it may carry.
func describe(err error) string {
	var se *fetch.StatusError
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("server answered %d %s", se.Code, http.StatusText(se.Code))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", reachTimeout)
	case errors.As(err, &dns):
		return "host name does not resolve"
	case errors.As(err, &op):
		return op.Op + ": " + op.Err.Error()
	case errors.Is(err, fs.ErrNotExist):
		return "file does not exist"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return "network or protocol error"
}

func (d *downloads) checks(name string, pick func(artifact) bool) []engine.Check {
	var arts []artifact
	for _, j := range d.jobs {
		if pick(j.art) {
			arts = append(arts, j.art)
		}
	}
	if len(arts) == 0 {
		return nil
	}
	return []engine.Check{artifactCheck{name: name, arts: arts, d: d}}
}

// kubeSteps, criSteps and cniSteps give the download steps their checks.
type kubeStep struct{ *downloads }
type criStep struct{ *downloads }
type cniStep struct{ *downloads }

func isCrictl(a artifact) bool { return len(a.Name) >= 6 && a.Name[:6] == "crictl" }

func (s kubeStep) Preflight() []engine.Check {
	return append(s.checks("kubernetes-artifacts", func(a artifact) bool { return !isCrictl(a) }),
		s.checks("cri-artifacts", isCrictl)...)
}

func (s criStep) Preflight() []engine.Check {
	return s.checks("cri-artifacts", func(artifact) bool { return true })
}

func (s cniStep) Preflight() []engine.Check {
	return s.checks("cni-artifacts", func(artifact) bool { return true })
}

// imageCheck resolves the image's manifest for the platform without
// pulling layers.
type imageCheck struct{ w *workspace }

func (imageCheck) Name() string { return "oci-image-reachable" }

func (c imageCheck) Run(ctx context.Context) []engine.CheckResult {
	r := engine.CheckResult{Name: c.Name(), Target: "image for machine " + c.w.machine, Severity: engine.SeverityOK}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if st, _, err := c.w.inspect(); err == nil && st == rootfsCurrent {
		r.Message = "machine already holds the plan's image; no pull needed"
		return []engine.CheckResult{r}
	}
	img, err := c.w.resolve(ctx)
	if err != nil {
		r.Severity, r.Message = engine.SeverityError, "manifest does not resolve: "+describeImageErr(err)
		return []engine.CheckResult{r}
	}
	r.Message = "manifest for " + img.platform + " resolves"
	return []engine.CheckResult{r}
}

func describeImageErr(err error) string {
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return "registry host name does not resolve"
	case errors.As(err, &op):
		return "registry " + op.Op + ": " + op.Err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within 30s"
	case errors.Is(err, fs.ErrNotExist):
		return "OCI layout does not exist"
	}
	// Registry errors (unauthorized, manifest unknown, no such platform) name
	// no URL; keep the last part of the message, which says what went wrong.
	msg := err.Error()
	for i := len(msg) - 1; i > 0; i-- {
		if msg[i] == ':' && i+2 < len(msg) {
			return msg[i+2:]
		}
	}
	return msg
}

// provisioningCheck: the machine dir, if it exists, is a readable
// directory, and the places rootfsctl will create files in are writable.
type provisioningCheck struct{ w *workspace }

func (provisioningCheck) Name() string { return "nspawn-machine-provisioning" }

func (c provisioningCheck) Run(context.Context) []engine.CheckResult {
	res := func(target string, err error, ok string) engine.CheckResult {
		r := engine.CheckResult{Name: c.Name(), Target: target, Severity: engine.SeverityOK, Message: ok}
		if err != nil {
			r.Severity, r.Message = engine.SeverityError, err.Error()
		}
		return r
	}
	var out []engine.CheckResult
	md := c.w.p.MachineDir
	if fi, err := os.Stat(md); err == nil {
		var problem error
		if !fi.IsDir() {
			problem = errors.New("machine directory exists and is not a directory")
		} else if d, err := os.Open(md); err != nil {
			problem = fmt.Errorf("machine directory is not readable: %s", describe(err))
		} else {
			if _, err := d.Readdirnames(1); err != nil && err.Error() != "EOF" {
				problem = fmt.Errorf("machine directory is not readable: %s", describe(err))
			}
			d.Close()
		}
		out = append(out, res("machine directory", problem, "exists and is readable"))
	}
	// nspawn refuses to start a machine whose bind source is missing.
	for _, src := range append(append([]string{}, c.w.p.BindReadOnly...), c.w.p.HostDevices...) {
		r := engine.CheckResult{Name: c.Name(), Target: "bind source " + src, Severity: engine.SeverityOK, Message: "exists"}
		if _, err := os.Stat(src); err != nil {
			r.Severity = engine.SeverityWarning
			r.Message = "does not exist on this host: systemd-nspawn will refuse to start the machine until it does"
		}
		out = append(out, r)
	}
	for _, t := range []struct{ what, dir string }{
		{"machine directory parent", filepath.Dir(md)},
		{".nspawn directory", filepath.Dir(c.w.nspawn)},
		{"service drop-in directory", filepath.Dir(c.w.override)},
	} {
		out = append(out, res(t.what, writableAncestor(t.dir), "writable"))
	}
	return out
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
			f, err := os.CreateTemp(dir, TempPrefix+"probe-")
			if err != nil {
				return fmt.Errorf("%s is not writable: %s", dir, describe(err))
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
