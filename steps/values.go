package steps

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// Typed parameter values. Each checks itself when decoded and describes
// itself to the JSON Schema with the same pattern, so `rootfsctl validate`
// and an editor judge a literal value alike. Checks that relate two fields
// stay in the step builders.

// pattern is a value's syntax, shared by its decoder and its schema.
type pattern struct {
	re   *regexp.Regexp
	max  int // maximum length, 0 for none
	what string
}

func newPattern(re, what string, max int) pattern {
	return pattern{re: regexp.MustCompile(re), what: what, max: max}
}

func (p pattern) check(s string) error {
	if !p.re.MatchString(s) || (p.max > 0 && len(s) > p.max) {
		return fmt.Errorf("%q is not %s", s, p.what)
	}
	return nil
}

func (p pattern) schema() map[string]any {
	s := map[string]any{"type": "string", "pattern": p.re.String()}
	if p.max > 0 {
		s["maxLength"] = p.max
	}
	return s
}

var (
	versionSyntax  = newPattern(`^[0-9]+\.[0-9]+\.[0-9]+([-+~][0-9A-Za-z.+~-]+)?$`, "a version like 1.33.1", 0)
	archSyntax     = newPattern(`^[a-z0-9]+$`, "a Go architecture name (amd64, arm64)", 0)
	digestSyntax   = newPattern(`^[0-9a-f]{64}$`, "a SHA-256 digest (64 lowercase hex digits)", 0)
	nameSyntax     = newPattern(`^[a-z0-9][a-z0-9._-]*$`, "a file name (lowercase letters, digits, . _ -)", 0)
	wordSyntax     = newPattern(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`, "a word (letters, digits, . _ -)", 0)
	platformSyntax = newPattern(`^[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?$`, "os/arch[/variant]", 0)
	hostnameSyntax = newPattern(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`, "a valid hostname", 253)
	urlSyntax      = newPattern(`^(https?://[^/?#\s]+([/?#].*)?|file:///.*)$`, "an https://, http:// or file:/// URL", 0)
	// machineDirSyntax: an absolute path whose base name, the machine's
	// name, is letters, digits, _ . - (at most 64).
	machineDirSyntax = newPattern(`^/(.*/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/*$`, "an absolute path whose base name is a machine name (letters, digits, _ . -)", 0)
)

// Version is a release version written without the leading v (1.33.1).
type Version string

func (v *Version) UnmarshalText(b []byte) error {
	s := string(b)
	if rest, ok := strings.CutPrefix(s, "v"); ok && versionSyntax.check(rest) == nil {
		return fmt.Errorf("write %q without the leading v", rest)
	}
	if err := versionSyntax.check(s); err != nil {
		return err
	}
	*v = Version(s)
	return nil
}

func (Version) JSONSchema() map[string]any { return versionSyntax.schema() }

// Arch is a Go architecture name (amd64, arm64).
type Arch string

func (a *Arch) UnmarshalText(b []byte) error { return set(a, archSyntax, b) }
func (Arch) JSONSchema() map[string]any      { return archSyntax.schema() }

// Digest is a pinned SHA-256, 64 lowercase hex digits.
type Digest string

func (d *Digest) UnmarshalText(b []byte) error { return set(d, digestSyntax, b) }
func (Digest) JSONSchema() map[string]any      { return digestSyntax.schema() }

// Name is a file name inside an install directory (a binary, a plugin).
type Name string

func (n *Name) UnmarshalText(b []byte) error { return set(n, nameSyntax, b) }
func (Name) JSONSchema() map[string]any      { return nameSyntax.schema() }

// Word is a suite, component or module name.
type Word string

func (w *Word) UnmarshalText(b []byte) error { return set(w, wordSyntax, b) }
func (Word) JSONSchema() map[string]any      { return wordSyntax.schema() }

// Hostname is a DNS host name.
type Hostname string

func (h *Hostname) UnmarshalText(b []byte) error { return set(h, hostnameSyntax, b) }
func (Hostname) JSONSchema() map[string]any      { return hostnameSyntax.schema() }

// Platform is os/arch[/variant].
type Platform string

func (p *Platform) UnmarshalText(b []byte) error {
	if err := platformSyntax.check(string(b)); err != nil {
		return err
	}
	if _, err := v1.ParsePlatform(string(b)); err != nil {
		return fmt.Errorf("%q is not os/arch[/variant]: %v", b, err)
	}
	*p = Platform(b)
	return nil
}

func (Platform) JSONSchema() map[string]any { return platformSyntax.schema() }

// URL is a source URL: https://, http:// (with a host) or file:/// (with
// an absolute path).
type URL string

func (u *URL) UnmarshalText(b []byte) error {
	s := string(b)
	if err := urlSyntax.check(s); err != nil {
		return fmt.Errorf("%q is not an https://, http:// or file:/// URL", fetch.Redact(s))
	}
	if _, err := url.Parse(s); err != nil {
		return fmt.Errorf("invalid URL %s: %v", fetch.Redact(s), err)
	}
	*u = URL(s)
	return nil
}

func (URL) JSONSchema() map[string]any { return urlSyntax.schema() }

// MachineDir is a machine's root directory: an absolute path other than /,
// cleaned, whose base name is the machine's name.
type MachineDir string

func (m *MachineDir) UnmarshalText(b []byte) error {
	var p engine.AbsPath
	if err := p.UnmarshalText(b); err != nil {
		return err
	}
	if last := path.Base(strings.TrimRight(string(b), "/")); last == "." || last == ".." {
		return fmt.Errorf("must end in the machine's name, not %q, got %q", last, b)
	}
	if err := machineDirSyntax.check(string(b)); err != nil || !machineNameOK(path.Base(string(p))) {
		return fmt.Errorf("machine name %q (the base name) must be letters, digits, _ . - (at most 64)", path.Base(string(p)))
	}
	*m = MachineDir(p)
	return nil
}

func (MachineDir) JSONSchema() map[string]any { return machineDirSyntax.schema() }

var machineName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func machineNameOK(s string) bool { return machineName.MatchString(s) }

// set checks b against p and stores it in v.
func set[T ~string](v *T, p pattern, b []byte) error {
	if err := p.check(string(b)); err != nil {
		return err
	}
	*v = T(b)
	return nil
}

// BindPath is a host path bound into the machine: absolute, without the
// spaces and colons that nspawn's Bind= syntax gives meaning to.
type BindPath string

var bindSyntax = newPattern(`^/[^:\s]*$`, "an absolute path without spaces or colons", 0)

func (b *BindPath) UnmarshalText(t []byte) error { return set(b, bindSyntax, t) }
func (BindPath) JSONSchema() map[string]any      { return bindSyntax.schema() }

// texts turns typed strings back into plain ones.
func texts[T ~string](v []T) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = string(x)
	}
	return out
}

// URLTemplate is a whole-URL template: a URL with {placeholders}. The
// builders check which placeholders an artifact allows.
type URLTemplate string

func (u *URLTemplate) UnmarshalText(b []byte) error {
	if err := urlSyntax.check(string(b)); err != nil {
		return fmt.Errorf("%q is not an https://, http:// or file:/// URL template", fetch.Redact(string(b)))
	}
	*u = URLTemplate(b)
	return nil
}

func (URLTemplate) JSONSchema() map[string]any { return urlSyntax.schema() }

// ImageRef is an image reference: registry/repository[:tag][@digest] in
// the distribution grammar (lowercase repository path), or
// oci:/absolute/layout[:tag].
type ImageRef string

var imageSyntax = func() pattern {
	domainComponent := `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	domain := domainComponent + `(?:\.` + domainComponent + `)*(?::[0-9]+)?`
	pathComponent := `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
	name := `(?:` + domain + `/)?` + pathComponent + `(?:/` + pathComponent + `)*`
	tag := `(?::[\w][\w.-]{0,127})?`
	digest := `(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?`
	return newPattern(`^(?:oci:/.+|`+name+tag+digest+`)$`, "an image reference (registry/repository:tag, registry/repository@sha256:..., or oci:/path)", 0)
}()

func (r *ImageRef) UnmarshalText(b []byte) error { return set(r, imageSyntax, b) }
func (ImageRef) JSONSchema() map[string]any      { return imageSyntax.schema() }

// String is the cleaned path.
func (m MachineDir) String() string { return string(m) }

// hostArch and hostHostname are defaults that take the host's value.
const (
	hostArch     Arch     = "${host.arch}"
	hostHostname Hostname = "${host.hostname}"
)

// duplicates reports each name a list holds more than once.
func duplicates(field string, list []Name) engine.FieldErrors {
	var errs engine.FieldErrors
	seen := map[Name]int{}
	for i, n := range list {
		if first, dup := seen[n]; dup {
			errs = append(errs, engine.FieldError{Path: fmt.Sprintf("%s[%d]", field, i), Message: fmt.Sprintf("%q is listed twice (first as %s[%d])", n, field, first)})
			continue
		}
		seen[n] = i
	}
	return errs
}

// uniqueItems makes the schema of the list property field say that its
// items are distinct.
func uniqueItems(s map[string]any, field string) {
	if props, ok := s["properties"].(map[string]any); ok {
		if f, ok := props[field].(map[string]any); ok {
			f["uniqueItems"] = true
		}
	}
}
