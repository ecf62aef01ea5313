package steps

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/atomicfile"
	"github.com/rootfsctl/rootfsctl/internal/cache"
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

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.tmpl"))

type workspace struct {
	p        WorkspaceParams
	dir      string // the machine directory
	machine  string
	binds    []string // bindReadOnly
	devices  []string // hostDevices
	ref      imageRef
	platform v1.Platform
	nspawn   string // host path of the .nspawn file
	override string // host path of the drop-in
	opts     *Options
}

func newWorkspace(_ string, p *WorkspaceParams, o *Options) (engine.Step, error) {
	dir := string(p.MachineDir)
	w := &workspace{p: *p, dir: dir, machine: filepath.Base(dir), opts: o,
		binds: texts(p.BindReadOnly), devices: texts(p.HostDevices)}
	var err error
	if w.ref, err = parseImageRef(string(p.Image), p.Insecure); err != nil {
		return nil, engine.FieldError{Path: "image", Message: err.Error(), Uses: []string{"insecure"}}
	}
	pl, err := v1.ParsePlatform(string(p.Platform))
	if err != nil {
		return nil, err
	}
	w.platform = *pl
	w.nspawn = string(p.NspawnConfig)
	if w.nspawn == "" {
		w.nspawn = "/etc/systemd/nspawn/" + w.machine + ".nspawn"
	}
	w.override = string(p.ServiceOverride)
	if w.override == "" {
		w.override = "/etc/systemd/system/systemd-nspawn@" + w.machine + ".service.d/override.conf"
	}
	return w, nil
}

// workspaceRecord is written inside the rootfs when it is complete.
type workspaceRecord struct {
	Image    string    `json:"image"`
	Digest   string    `json:"digest"`
	Platform string    `json:"platform"`
	Unpacked time.Time `json:"unpacked"`
}

const workspaceRecordPath = StateDir + "/workspace.json"

// rootfsState is what the machine directory holds now.
type rootfsState int

const (
	rootfsMissing rootfsState = iota // missing or empty: unpack
	rootfsCurrent                    // the plan's image
	rootfsOther                      // another image, or one rootfsctl did not unpack
)

func (w *workspace) inspect(ctx context.Context) (rootfsState, string, error) {
	d, err := os.Open(w.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return rootfsMissing, "machine directory does not exist", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("open machine directory: %w", err)
	}
	names, err := d.Readdirnames(1)
	d.Close()
	if len(names) == 0 {
		if err != nil && err != io.EOF {
			return 0, "", fmt.Errorf("read machine directory: %w", err)
		}
		return rootfsMissing, "machine directory is empty", nil
	}
	root, err := openMachine(w.dir)
	if err != nil {
		return 0, "", err
	}
	defer root.Close()
	b, err := readBounded(root, workspaceRecordPath, maxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return rootfsOther, "machine directory holds a root filesystem rootfsctl did not unpack", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read workspace record: %w", err)
	}
	var rec workspaceRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return rootfsOther, "machine directory has a damaged workspace record", nil
	}
	wantPlatform := platformString(w.platform)
	switch {
	case !platformSatisfies(rec.Platform, w.platform):
		return rootfsOther, fmt.Sprintf("machine holds a %s rootfs, plan wants %s", rec.Platform, wantPlatform), nil
	case rec.Image == string(w.p.Image), w.ref.isDigest() && rec.Digest == w.ref.ref.Identifier():
		// The reference it was unpacked from (a tag is resolved once, so a
		// warm apply asks no registry anything), or a pin of its manifest.
		return rootfsCurrent, "holds the plan's image (" + short(rec.Digest) + ")", nil
	}
	// Another reference (another registry, a mirror, a digest of an
	// index): an image is the same image when its platform manifest is, so
	// resolve the plan's reference, manifest only, and compare.
	img, err := w.resolve(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("compare the machine's image with the plan's: %w", err)
	}
	if img.digest != rec.Digest {
		return rootfsOther, fmt.Sprintf("machine holds another image (%s) than the plan's (%s)", short(rec.Digest), short(img.digest)), nil
	}
	return rootfsCurrent, "holds the plan's image (" + short(rec.Digest) + "), the same image from another reference", nil
}

// platformSatisfies: the recorded platform is the index entry's, which may
// name a variant (linux/arm64/v8) the plan does not ask for (linux/arm64);
// it is the plan's platform when it would have been chosen for it.
func platformSatisfies(recorded string, want v1.Platform) bool {
	got, err := v1.ParsePlatform(recorded)
	return err == nil && got.Satisfies(want)
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

// configs renders the two host files.
func (w *workspace) configs() (map[string][]byte, error) {
	data := struct {
		Machine      string
		BindReadOnly []string
		HostDevices  []string
	}{w.machine, w.binds, w.devices}
	out := map[string][]byte{}
	for file, tmpl := range map[string]string{w.nspawn: "machine.nspawn.tmpl", w.override: "override.conf.tmpl"} {
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, tmpl, data); err != nil {
			return nil, fmt.Errorf("render %s: %w", tmpl, err)
		}
		out[file] = b.Bytes()
	}
	return out, nil
}

// staleConfigs lists the host config files whose content is not the
// rendered one, each with why ("is missing", "differs").
func (w *workspace) staleConfigs() ([]string, error) {
	cfg, err := w.configs()
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, file := range []string{w.nspawn, w.override} {
		same, err := hasContent(nil, file, cfg[file])
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		if !same {
			if _, err := os.Lstat(file); errors.Is(err, fs.ErrNotExist) {
				stale = append(stale, file+" is missing")
			} else {
				stale = append(stale, file+" differs")
			}
		}
	}
	return stale, nil
}

func (w *workspace) Check(ctx context.Context) (engine.Change, error) {
	st, why, err := w.inspect(ctx)
	if err != nil {
		return engine.Change{}, err
	}
	var reasons []string
	switch st {
	case rootfsMissing:
		reasons = append(reasons, why+"; will unpack the image")
	case rootfsOther:
		switch w.p.OnImageChange {
		case "recreate":
			reasons = append(reasons, why+"; will recreate it (onImageChange: recreate)")
		case "fail":
			return engine.Change{}, engine.Permanent(fmt.Errorf("%s; set onImageChange: recreate to replace it, or keep to use it as it is", why))
		}
	}
	stale, err := w.staleConfigs()
	if err != nil {
		return engine.Change{}, err
	}
	reasons = append(reasons, stale...)
	if len(reasons) > 0 {
		return engine.NeedsChange(strings.Join(reasons, "; ")), nil
	}
	if st == rootfsOther {
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
		if err := w.unpack(ctx, false); err != nil {
			return err
		}
	case st == rootfsOther && w.p.OnImageChange == "recreate":
		zerolog.Ctx(ctx).Warn().Str("machine", w.machine).Msg(why + "; recreating it")
		if err := w.unpack(ctx, true); err != nil {
			return err
		}
	case st == rootfsOther && w.p.OnImageChange == "fail":
		return engine.Permanent(fmt.Errorf("%s; set onImageChange: recreate to replace it, or keep to use it as it is", why))
	}
	cfg, err := w.configs()
	if err != nil {
		return err
	}
	if err := w.Tidy(ctx); err != nil {
		return err
	}
	for _, file := range []string{w.nspawn, w.override} {
		same, err := hasContent(nil, file, cfg[file])
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		if same {
			continue
		}
		zerolog.Ctx(ctx).Debug().Str("phase", "config").Str("file", file).Msg("writing")
		if err := writeHostFile(file, cfg[file], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeHostFile writes a host file atomically, creating its directory.
func writeHostFile(file string, content []byte, mode fs.FileMode) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer root.Close()
	if err := atomicfile.WriteFile(root, filepath.Base(file), bytes.NewReader(content), mode, "workspace"); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// mountPointProblem refuses a machine directory that is a mount point
// (an empty volume): the rootfs is unpacked beside it and renamed into
// place when complete, and nothing can be renamed onto a mount point; the
// unpack would end in "device or resource busy" after all its work.
func mountPointProblem(dir string) error {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &parent) != nil {
		return nil // missing: nothing is mounted there
	}
	if st.Dev != parent.Dev {
		return engine.Permanent(fmt.Errorf("machine directory %s is a mount point: rootfsctl unpacks beside it and renames the rootfs into place, which a mount point cannot take; use a directory inside the volume as machineDir", dir))
	}
	return nil
}

// Names of directories beside the machine dir: the staging area of an
// unpack in progress, and a replaced rootfs waiting to be deleted.
func (w *workspace) stagingPrefix() string { return "." + w.machine + ".rootfsctl-staging-" }
func (w *workspace) oldPrefix() string     { return "." + w.machine + ".rootfsctl-old-" }

// cleanLeftovers removes staging and old directories of earlier runs that
// were interrupted. They are never accepted as a rootfs.
func (w *workspace) cleanLeftovers(ctx context.Context) {
	parent := filepath.Dir(w.dir)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), w.stagingPrefix()) || strings.HasPrefix(e.Name(), w.oldPrefix()) {
			p := filepath.Join(parent, e.Name())
			zerolog.Ctx(ctx).Info().Str("path", p).Msg("removing leftover of an interrupted run")
			if err := os.RemoveAll(p); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("path", p).Msg("could not remove leftover")
			}
		}
	}
}

// unpack builds the rootfs in a staging directory and moves it into place.
func (w *workspace) unpack(ctx context.Context, replace bool) error {
	log := zerolog.Ctx(ctx)
	parent := filepath.Dir(w.dir)
	// Missing parents are made 0700, as /var/lib/machines is: the rootfs
	// holds setuid-root programs and device nodes, which host users must
	// not reach.
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	if err := mountPointProblem(w.dir); err != nil {
		return err
	}
	w.cleanLeftovers(ctx)
	log.Debug().Str("phase", "pull").Msg("resolving the image")
	img, err := w.resolve(ctx)
	if err != nil {
		return err
	}
	staging, err := os.MkdirTemp(parent, w.stagingPrefix())
	if err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// Best effort; a leftover is removed by the next run and never accepted.
			_ = os.RemoveAll(staging)
		}
	}()
	// The machine's root is 0755 and root's (when privileged), whatever
	// the image's "./" entry says (the unpack leaves the target alone).
	if err := os.Chmod(staging, 0o755); err != nil {
		return fmt.Errorf("chmod staging directory: %w", err)
	}
	if w.opts.Privileged {
		if err := os.Lchown(staging, 0, 0); err != nil {
			return fmt.Errorf("chown staging directory: %w", err)
		}
	}
	root, err := os.OpenRoot(staging)
	if err != nil {
		return fmt.Errorf("open staging directory: %w", err)
	}
	defer root.Close()

	start := time.Now()
	stats, err := w.unpackLayers(ctx, root, img)
	if err != nil {
		return err
	}
	// The state directory is rootfsctl's: an image must not pre-seed records.
	if err := root.RemoveAll(StateDir); err != nil {
		return fmt.Errorf("clear %s: %w", StateDir, err)
	}
	rec, _ := json.MarshalIndent(workspaceRecord{Image: string(w.p.Image), Digest: img.digest, Platform: img.platform, Unpacked: time.Now().UTC()}, "", "  ")
	if err := root.MkdirAll(StateDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", StateDir, err)
	}
	if err := atomicfile.WriteFile(root, workspaceRecordPath, bytes.NewReader(append(rec, '\n')), 0o644, "workspace"); err != nil {
		return err
	}
	// Everything on disk before the rename that makes it the machine.
	rootDir, err := root.Open(".")
	if err != nil {
		return err
	}
	err = unix.Syncfs(int(rootDir.Fd()))
	rootDir.Close()
	if err != nil {
		return fmt.Errorf("sync staging directory: %w", err)
	}

	if replace {
		old, err := os.MkdirTemp(parent, w.oldPrefix())
		if err != nil {
			return fmt.Errorf("create directory for the old rootfs: %w", err)
		}
		if err := os.Remove(old); err != nil {
			return err
		}
		if err := os.Rename(w.dir, old); err != nil {
			return fmt.Errorf("move old rootfs aside: %w", err)
		}
		defer func() {
			if err := os.RemoveAll(old); err != nil {
				log.Warn().Err(err).Str("path", old).Msg("could not remove the old rootfs; the next run retries")
			}
		}()
	} else if err := os.Remove(w.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove empty machine directory: %w", err)
	}
	if err := os.Rename(staging, w.dir); err != nil {
		return fmt.Errorf("move rootfs into place: %w", err)
	}
	committed = true
	if d, err := os.Open(parent); err == nil {
		_ = d.Sync() // durability of the rename; the data itself is already synced
		d.Close()
	}
	ev := log.Info().Str("digest", img.digest).Str("platform", img.platform).Int("entries", stats.Entries).
		Int64("bytes", stats.Bytes).Dur("tookMs", time.Since(start))
	ev.Msg("unpacked image")
	if stats.SkippedOwners+stats.SkippedDevices+stats.SkippedXattrs > 0 {
		log.Warn().Int("owners", stats.SkippedOwners).Int("deviceNodes", stats.SkippedDevices).Int("xattrs", stats.SkippedXattrs).
			Msg("not running as root: file owners, device nodes and security xattrs from the image were not kept")
	}
	if stats.UnsupportedXattrs > 0 {
		log.Warn().Int("xattrs", stats.UnsupportedXattrs).Str("path", parent).
			Msg("the file system of the machine directory does not support some extended attributes of the image (or their namespace): they were not kept; file capabilities among them are lost")
	}
	return nil
}

// unpackLayers applies the layers in order. A layer already in the cache is
// read from there (verified as it is read); otherwise it is streamed from
// the registry and written to the cache as it is unpacked: one pass hashes,
// inflates and extracts, with no temporary copy. While layer N is unpacked,
// the following layers are fetched into the cache.
func (w *workspace) unpackLayers(ctx context.Context, root *os.Root, img *resolved) (unpack.Stats, error) {
	layers, err := img.image.Layers()
	if err != nil {
		return unpack.Stats{}, fmt.Errorf("list layers: %w", err)
	}
	digests := make([]string, len(layers))
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return unpack.Stats{}, fmt.Errorf("layer %d: %w", i+1, err)
		}
		if d.Algorithm != "sha256" {
			return unpack.Stats{}, fmt.Errorf("layer %d: unsupported digest algorithm %s", i+1, d.Algorithm)
		}
		digests[i] = d.Hex
	}
	ctx, cancel := context.WithCancel(ctx)
	// fetched[i] receives the outcome of caching layer i (i >= 1).
	fetched := make([]chan error, len(layers))
	for i := range fetched {
		fetched[i] = make(chan error, 1)
	}
	fetcherDone := make(chan struct{})
	go func() {
		defer close(fetcherDone)
		for i := 1; i < len(layers); i++ {
			fetched[i] <- w.cacheLayer(ctx, layers[i], digests[i])
		}
	}()
	// On any return, stop the fetcher and wait for it, so its temporary
	// cache file is gone before this step reports.
	defer func() {
		cancel()
		<-fetcherDone
	}()

	u := unpack.New(root, unpack.Options{Privileged: w.opts.Privileged})
	defer u.Close()
	for i, l := range layers {
		name := fmt.Sprintf("layer %d/%d", i+1, len(layers))
		if i > 0 {
			if err := <-fetched[i]; err != nil {
				return u.Stats(), fmt.Errorf("fetch %s (%s): %w", name, short("sha256:"+digests[i]), err)
			}
		}
		if err := w.unpackLayer(ctx, u, l, digests[i], name); err != nil {
			return u.Stats(), fmt.Errorf("unpack %s (%s): %w", name, short("sha256:"+digests[i]), err)
		}
	}
	return u.Stats(), nil
}

// cacheLayer downloads a layer blob into the cache unless it is there.
func (w *workspace) cacheLayer(ctx context.Context, l v1.Layer, digest string) error {
	if w.opts.Cache.Has(digest) {
		return nil
	}
	rc, err := w.blob(l)
	if err != nil {
		return err
	}
	defer rc.Close()
	e, err := w.opts.Cache.Create()
	if err != nil {
		return err
	}
	if _, err := io.Copy(e, &ctxReader{ctx: ctx, r: rc}); err != nil {
		e.Abort()
		return err
	}
	return e.Commit(digest)
}

func (w *workspace) unpackLayer(ctx context.Context, u *unpack.Unpacker, l v1.Layer, digest, name string) error {
	zerolog.Ctx(ctx).Debug().Str("phase", "unpack").Str("layer", name).Msg("unpacking")
	size, _ := l.Size()
	tr := engine.ProgressFrom(ctx).Track(name, size)
	defer tr.Done()
	// An open entry can be read to its end even if a prune removes its
	// name meanwhile; one removed before the open is pulled instead.
	if rc, _, err := w.opts.Cache.Open(digest); err == nil {
		err = u.Layer(ctx, &progressReader{r: rc, t: tr})
		// Close verifies what the unpack did not read: a damaged entry is
		// the cause of the failure (and is gone now, so a retry pulls it).
		if cerr := rc.Close(); errors.Is(cerr, cache.ErrCorrupt) && !errors.Is(err, cache.ErrCorrupt) {
			return fmt.Errorf("cached layer: %w; removed it, a retry pulls it again", cerr)
		}
		return err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	rc, err := w.blob(l)
	if err != nil {
		return err
	}
	defer rc.Close()
	e, err := w.opts.Cache.Create()
	if err != nil {
		return err
	}
	if err := u.Layer(ctx, io.TeeReader(&progressReader{r: rc, t: tr}, e)); err != nil {
		e.Abort()
		return err
	}
	// The whole blob went through the entry: its digest is the check.
	if err := e.Commit(digest); err != nil {
		return fmt.Errorf("verify layer: %w", err)
	}
	return nil
}

// blob opens a layer's compressed blob with the idle timeout artifact
// downloads have: a registry that stops sending mid-blob is given up on.
func (w *workspace) blob(l v1.Layer) (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	return newIdleReader(rc, w.opts.Fetch.IdleTimeout()), nil
}

// idleReader closes its source when no byte arrives for a while, which
// ends the read waiting on it with errIdle.
type idleReader struct {
	rc    io.ReadCloser
	after time.Duration
	timer *time.Timer
	idle  atomic.Bool
}

var errIdle = errors.New("the registry sent no data")

func newIdleReader(rc io.ReadCloser, after time.Duration) *idleReader {
	r := &idleReader{rc: rc, after: after}
	r.timer = time.AfterFunc(after, func() {
		r.idle.Store(true)
		_ = rc.Close() // unblocks the read; the reader reports errIdle
	})
	return r
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if r.idle.Load() {
		return n, fmt.Errorf("%w for %s", errIdle, r.after)
	}
	if n > 0 {
		r.timer.Reset(r.after)
	}
	return n, err
}

func (r *idleReader) Close() error {
	r.timer.Stop()
	return r.rc.Close()
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
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
	w.cleanLeftovers(ctx)
	for _, file := range []string{w.nspawn, w.override} {
		if root, err := os.OpenRoot(filepath.Dir(file)); err == nil {
			atomicfile.RemoveTemps(root, ".", "workspace")
			root.Close()
		}
	}
	if root, err := openMachine(w.dir); err == nil {
		atomicfile.RemoveTemps(root, StateDir, "workspace")
		root.Close()
	}
	return nil
}
