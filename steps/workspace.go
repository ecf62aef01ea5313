package steps

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/machine"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/internal/nspawn"
	"github.com/rootfsctl/rootfsctl/internal/oci"
	"github.com/rootfsctl/rootfsctl/internal/trace"
	"github.com/rootfsctl/rootfsctl/internal/unpack"
)

const workspaceDoc = `Makes machineDir a complete root filesystem from an OCI image and writes
the systemd-nspawn settings for it.

When machineDir is missing or empty, only the requested platform's manifest
and layers are fetched, and the layers are unpacked in order, streaming, into
a staging directory beside machineDir (whiteouts, opaque directories, hard
links, symlinks stored as they are; as root also owners, modes, xattrs and
device nodes). The staging directory replaces machineDir only when complete,
with the image digest recorded inside it, so a crash never leaves a
half-unpacked rootfs that a later run accepts. When the machine holds another
image, onImageChange decides: fail (default), recreate, or keep.

The .nspawn file and the service drop-in are written atomically, only when
their content differs. The machine name is machineDir's base name.

An image is identified by its platform manifest digest, wherever it is
served from. The reference the machine was unpacked from is resolved once
(a warm apply asks no registry anything); another reference (a mirror
registry, a digest of the index) is resolved, manifest only, and is the same
image when its platform manifest digest is the recorded one. To move a
machine to a new image, change the reference (a digest pins it exactly).`

// WorkspaceParams are the parameters of ensure-workspace.
type WorkspaceParams struct {
	MachineDir      MachineDir     `yaml:"machineDir" jsonschema:"required" jsonschema_description:"The machine's root directory (absolute); its base name is the machine name."`
	Image           ImageRef       `yaml:"image" jsonschema:"required" jsonschema_description:"registry/repo:tag, registry/repo@sha256:..., or oci:/path/to/layout[:tag]."`
	Platform        Platform       `yaml:"platform" jsonschema_description:"Only this platform's manifest and layers are fetched."`
	Insecure        bool           `yaml:"insecure" jsonschema_description:"Allow a plain-HTTP registry (loopback and private addresses need no flag)."`
	OnImageChange   string         `yaml:"onImageChange" jsonschema:"enum=fail,enum=recreate,enum=keep" jsonschema_description:"What to do when the machine holds another image (or one rootfsctl did not unpack)."`
	NspawnConfig    engine.AbsPath `yaml:"nspawnConfig" jsonschema_description:"Path of the .nspawn file; default /etc/systemd/nspawn/<machine>.nspawn."`
	ServiceOverride engine.AbsPath `yaml:"serviceOverride" jsonschema_description:"Path of the service drop-in; default /etc/systemd/system/systemd-nspawn@<machine>.service.d/override.conf."`
	BindReadOnly    []BindPath     `yaml:"bindReadOnly" jsonschema_description:"Host paths bound read-only into the machine."`
	HostDevices     []BindPath     `yaml:"hostDevices" jsonschema_description:"Host device paths bound into the machine (each becomes Bind=<path>)."`
}

var workspaceDefaults = WorkspaceParams{
	Platform:      "linux/" + Platform(hostArch),
	OnImageChange: "fail",
	BindReadOnly:  []BindPath{"/lib/modules"},
}

// The preflight checks of ensure-workspace.
const (
	imageCheckName        = "oci-image-reachable"
	provisioningCheckName = "nspawn-machine-provisioning"
)

type workspace struct {
	p          WorkspaceParams
	dir        string // the machine directory
	machine    string
	ref        oci.Ref // where the image is resolved from: the mirror's, when there is one
	upstream   oci.Ref // the plan's
	mirror     *mirror.Mirror
	fallback   bool // an image the mirror lacks comes from upstream
	platform   v1.Platform
	settings   nspawn.Settings
	reg        *oci.Registry
	cache      *cache.Cache
	privileged bool
}

func newWorkspace(_ string, p *WorkspaceParams, o *Options) (engine.Step, error) {
	dir := string(p.MachineDir)
	w := &workspace{p: *p, dir: dir, machine: filepath.Base(dir), cache: o.Cache, privileged: o.Privileged,
		reg: oci.NewRegistry(o.Keychain, o.Fetch)}
	var err error
	if w.upstream, err = oci.ParseRef(string(p.Image), p.Insecure); err != nil {
		return nil, engine.FieldError{Path: "image", Message: err.Error(), Uses: []string{"insecure"}}
	}
	w.ref, w.mirror, w.fallback = w.upstream, o.Mirror, o.MirrorFallback
	if w.mirror != nil {
		if w.ref, err = w.mirror.ImageRef(imageName(w.upstream)); err != nil {
			return nil, engine.FieldError{Path: "image", Message: "cannot name it in the mirror: " + err.Error()}
		}
	}
	pl, err := v1.ParsePlatform(string(p.Platform))
	if err != nil {
		return nil, err
	}
	w.platform = *pl
	w.settings = nspawn.Settings{Machine: w.machine, BindReadOnly: texts(p.BindReadOnly), HostDevices: texts(p.HostDevices),
		NspawnFile:   cmp.Or(string(p.NspawnConfig), "/etc/systemd/nspawn/"+w.machine+".nspawn"),
		OverrideFile: cmp.Or(string(p.ServiceOverride), "/etc/systemd/system/systemd-nspawn@"+w.machine+".service.d/override.conf")}
	return w, nil
}

// rootfsState is what the machine directory holds now.
type rootfsState int

const (
	rootfsMissing rootfsState = iota // missing or empty: unpack
	rootfsCurrent                    // the plan's image
	rootfsOther                      // another image, or one rootfsctl did not unpack
)

func (w *workspace) inspect(ctx context.Context) (rootfsState, string, error) {
	empty, err := machine.Empty(w.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return rootfsMissing, "machine directory does not exist", nil
	case err != nil:
		return 0, "", err
	case empty:
		return rootfsMissing, "machine directory is empty", nil
	}
	rec, why, err := machine.ReadRecord(w.dir)
	if rec == nil || err != nil {
		return rootfsOther, why, err
	}
	wantPlatform := oci.PlatformString(w.platform)
	pinned, isPin := w.ref.PinnedDigest()
	switch {
	case !oci.Satisfies(rec.Platform, w.platform):
		return rootfsOther, fmt.Sprintf("machine holds a %s rootfs, plan wants %s", rec.Platform, wantPlatform), nil
	case rec.Image == string(w.p.Image), isPin && rec.Digest == pinned:
		// The reference it was unpacked from (a tag is resolved once, so a
		// warm apply asks no registry anything), or a pin of its manifest.
		return rootfsCurrent, "holds the plan's image (" + oci.Short(rec.Digest) + ")", nil
	}
	// Another reference (another registry, a mirror, a digest of an
	// index): an image is the same image when its platform manifest is, so
	// resolve the plan's reference, manifest only, and compare.
	img, err := w.resolve(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("compare the machine's image with the plan's: %w", err)
	}
	if img.Digest != rec.Digest {
		return rootfsOther, fmt.Sprintf("machine holds another image (%s) than the plan's (%s)", oci.Short(rec.Digest), oci.Short(img.Digest)), nil
	}
	return rootfsCurrent, "holds the plan's image (" + oci.Short(rec.Digest) + "), the same image from another reference", nil
}

// imageChanged refuses to touch a machine holding another image.
func imageChanged(why string) error {
	return engine.Permanent(fmt.Errorf("%s; set onImageChange: recreate to replace it, or keep to use it as it is", why))
}

func (w *workspace) Check(ctx context.Context) (engine.Change, error) {
	st, why, err := w.inspect(ctx)
	if err != nil {
		return engine.Change{}, err
	}
	var reasons []string
	switch {
	case st == rootfsMissing:
		reasons = append(reasons, why+"; will unpack the image")
	case st == rootfsOther && w.p.OnImageChange == "recreate":
		reasons = append(reasons, why+"; will recreate it (onImageChange: recreate)")
	case st == rootfsOther && w.p.OnImageChange == "fail":
		return engine.Change{}, imageChanged(why)
	}
	files, err := w.settings.Render()
	if err != nil {
		return engine.Change{}, err
	}
	stale, err := nspawn.Stale(files)
	if err != nil {
		return engine.Change{}, err
	}
	reasons = append(reasons, stale...)
	switch {
	case len(reasons) > 0:
		return engine.NeedsChange(strings.Join(reasons, "; ")), nil
	case st == rootfsOther:
		return engine.UpToDate(why + " (kept: onImageChange: keep); nspawn settings current"), nil
	}
	return engine.UpToDate(why + "; nspawn settings current"), nil
}

func (w *workspace) Apply(ctx context.Context) error {
	st, why, err := w.inspect(ctx)
	if err != nil {
		return err
	}
	switch {
	case st == rootfsMissing:
		err = w.unpack(ctx, false)
	case st == rootfsOther && w.p.OnImageChange == "recreate":
		zerolog.Ctx(ctx).Warn().Str("machine", w.machine).Msg(why + "; recreating it")
		err = w.unpack(ctx, true)
	case st == rootfsOther && w.p.OnImageChange == "fail":
		err = imageChanged(why)
	}
	if err != nil {
		return err
	}
	files, err := w.settings.Render()
	if err != nil {
		return err
	}
	if err := w.Tidy(ctx); err != nil {
		return err
	}
	return nspawn.Write(ctx, files)
}

// unpack builds the rootfs from the image beside the machine directory
// and moves it into place (internal/machine).
func (w *workspace) unpack(ctx context.Context, replace bool) error {
	var rec machine.Record
	var stats unpack.Stats
	start := time.Now()
	endSync := func() {}
	err := machine.Build(ctx, w.dir, machine.BuildOptions{Replace: replace, Privileged: w.privileged}, func(root *os.Root) (_ machine.Record, err error) {
		rec, stats, err = w.fill(ctx, root)
		// what Build does after filling: record, sync, rename into place
		endSync = trace.Span(ctx, "sync and rename")
		return rec, err
	})
	endSync()
	if err != nil {
		return err
	}
	log := zerolog.Ctx(ctx)
	log.Info().Str("digest", rec.Digest).Str("platform", rec.Platform).Int("entries", stats.Entries).
		Int64("bytes", stats.Bytes).Dur("tookMs", time.Since(start)).Msg("unpacked image")
	if stats.SkippedOwners+stats.SkippedDevices+stats.SkippedXattrs > 0 {
		log.Warn().Int("owners", stats.SkippedOwners).Int("deviceNodes", stats.SkippedDevices).Int("xattrs", stats.SkippedXattrs).
			Msg("not running as root: file owners, device nodes and security xattrs from the image were not kept")
	}
	if stats.UnsupportedXattrs > 0 {
		log.Warn().Int("xattrs", stats.UnsupportedXattrs).Str("path", filepath.Dir(w.dir)).
			Msg("the file system of the machine directory does not support some extended attributes of the image (or their namespace): they were not kept; file capabilities among them are lost")
	}
	return nil
}

// fill resolves the image and unpacks its layers into root.
func (w *workspace) fill(ctx context.Context, root *os.Root) (machine.Record, unpack.Stats, error) {
	zerolog.Ctx(ctx).Debug().Str("phase", "pull").Msg("resolving the image")
	endResolve := trace.Span(ctx, "resolve image")
	img, err := w.resolve(ctx)
	endResolve()
	if err != nil && w.mirror != nil && oci.IsNotFound(err) {
		err = engine.Permanent(w.notMirrored())
	}
	if err != nil {
		return machine.Record{}, unpack.Stats{}, err
	}
	u := unpack.New(root, unpack.Options{Privileged: w.privileged})
	defer u.Close()
	err = img.Unpack(ctx, w.cache, func(ctx context.Context, l oci.Layer, blob io.Reader, spool io.Writer) error {
		zerolog.Ctx(ctx).Debug().Str("phase", "unpack").Str("layer", l.Name).Bool("inflate", spool != nil).Msg("unpacking")
		tr := engine.ProgressFrom(ctx).Track(l.Name, l.Size)
		defer tr.Done()
		r := &progressReader{r: blob, t: tr}
		if l.Stream {
			return u.Tar(ctx, r)
		}
		return u.LayerSpooled(ctx, r, spool)
	})
	rec := machine.Record{Image: string(w.p.Image), Digest: img.Digest, Platform: img.Platform, Unpacked: time.Now().UTC()}
	return rec, u.Stats(), err
}

type progressReader struct {
	r io.Reader
	t engine.Tracker
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.t.Add(int64(n))
	return n, err
}

// Resources: the machine directory; a second apply on it must wait.
func (w *workspace) Resources() []string { return []string{w.dir} }

// Tidy removes what an interrupted run left: staging and old rootfs
// directories beside the machine, temporary files next to the nspawn
// settings and in the state directory.
func (w *workspace) Tidy(ctx context.Context) error {
	machine.Tidy(ctx, w.dir)
	w.settings.Tidy()
	if root, err := machine.Open(w.dir); err == nil {
		machine.TidyRecord(root)
		root.Close()
	}
	return nil
}

func (w *workspace) Preflight() []engine.Check {
	return []engine.Check{imageCheck{w}, provisioningCheck{w}}
}

// imageCheck resolves the image's manifest for the platform without
// pulling layers. Its time is the context's (engine.CheckTimeout).
type imageCheck struct{ w *workspace }

func (imageCheck) Name() string { return imageCheckName }

func (c imageCheck) Run(ctx context.Context) []engine.CheckResult {
	left := fetch.TimeLeft(ctx, engine.CheckTimeout)
	r := engine.CheckResult{Name: c.Name(), Target: "image for machine " + c.w.machine, Severity: engine.SeverityOK}
	if st, _, err := c.w.inspect(ctx); err == nil && st == rootfsCurrent {
		r.Message = "machine already holds the plan's image; no pull needed"
		return []engine.CheckResult{r}
	}
	// The registry host, never the repository or tag.
	where := c.w.ref.Where() + ": "
	img, err := c.w.resolve(ctx)
	if err != nil && c.w.mirror != nil && oci.IsNotFound(err) {
		r.Severity, r.Message = engine.SeverityError, c.w.notMirrored().Error()
		return []engine.CheckResult{r}
	}
	if err != nil {
		r.Severity, r.Message = engine.SeverityError, where+oci.Describe(err, left)
		return []engine.CheckResult{r}
	}
	r.Message = where + "manifest for " + img.Platform + " resolves"
	return []engine.CheckResult{r}
}

// provisioningCheck: the machine dir, if it exists, is a readable
// directory, and the places rootfsctl will create files in are writable.
type provisioningCheck struct{ w *workspace }

func (provisioningCheck) Name() string { return provisioningCheckName }

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
		} else if empty, err := machine.Empty(md); err != nil {
			problem = fmt.Errorf("machine directory is not readable: %s", fetch.Describe(err, 0))
		} else if empty {
			problem = machine.MountPointProblem(md) // only an unpack, into an empty one, trips over it
		}
		out = append(out, res("machine directory", problem, "exists and is readable"))
	}
	// nspawn refuses to start a machine whose bind source is missing.
	for _, src := range append(append([]string{}, c.w.settings.BindReadOnly...), c.w.settings.HostDevices...) {
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
		{".nspawn directory", filepath.Dir(c.w.settings.NspawnFile)},
		{"service drop-in directory", filepath.Dir(c.w.settings.OverrideFile)},
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
	switch guard, missing := machine.Guard(parent); {
	case missing:
		r.Message = fmt.Sprintf("%s will be created mode 0700: other users cannot reach the machine", guard)
	case guard != "":
		r.Message = fmt.Sprintf("%s stops other users: they cannot reach the machine", guard)
	default:
		r.Severity = engine.SeverityWarning
		r.Message = fmt.Sprintf("every directory from / to %s lets other users through: they can run the machine's setuid programs and open its device nodes; make %s mode 0700 (as /var/lib/machines is)", parent, parent)
	}
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
			f, err := os.CreateTemp(dir, TempPrefix+"probe-")
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
