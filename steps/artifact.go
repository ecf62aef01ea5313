package steps

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps/fetch"
)

// Source says where one artifact comes from. Its fields are embedded in each
// download step's parameters.
type Source struct {
	Version string `yaml:"version" jsonschema_description:"Version, without a leading v (1.33.1)."`
	BaseURL string `yaml:"baseURL" jsonschema_description:"Replaces the upstream host and path prefix; the upstream layout below it is kept (air-gapped mirrors)."`
	URL     string `yaml:"url" jsonschema_description:"Replaces the whole URL: a template with {version}, {arch}, {os} and (for per-binary artifacts) {binary}. The checksum is looked for next to it, in the upstream format."`
	SHA256  string `yaml:"sha256" jsonschema_description:"Pinned SHA-256 (64 hex digits), checked instead of the published checksum."`
}

var (
	versionPattern     = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-+~][0-9A-Za-z.+~-]+)?$`)
	placeholderPattern = regexp.MustCompile(`\{[^{}]*\}`)
)

// validate checks the source's fields; prefix is the path of the source in
// the step's parameters ("" or "crictl."). allowed lists the placeholders
// the artifact's url may use.
func (s Source) validate(prefix string, versionRequired bool, allowed ...string) []engine.FieldError {
	var errs []engine.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, engine.FieldError{Path: prefix + field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case s.Version == "" && versionRequired:
		bad("version", "required")
	case strings.HasPrefix(s.Version, "v"):
		bad("version", "write %q without the leading v", s.Version[1:])
	case s.Version != "" && !versionPattern.MatchString(s.Version):
		bad("version", "%q is not a version like 1.33.1", s.Version)
	}
	if s.BaseURL != "" {
		if err := checkURL(s.BaseURL); err != nil {
			bad("baseURL", "%v", err)
		}
	}
	if s.URL != "" {
		for _, ph := range placeholderPattern.FindAllString(s.URL, -1) {
			if !contains(allowed, ph[1:len(ph)-1]) {
				bad("url", "unknown placeholder %s (allowed: {%s})", ph, strings.Join(allowed, "}, {"))
			}
		}
		if err := checkURL(placeholderPattern.ReplaceAllString(s.URL, "x")); err != nil {
			bad("url", "%v", err)
		}
		if s.BaseURL != "" {
			bad("url", "set url or baseURL, not both")
		}
	}
	if s.SHA256 != "" && !fetch.IsSHA256(s.SHA256) {
		bad("sha256", "must be 64 lowercase hex digits")
	}
	return errs
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL: %v", err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("URL %s has no host", fetch.Redact(raw))
		}
	case "file":
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("file URL %s needs an absolute path", fetch.Redact(raw))
		}
	default:
		return fmt.Errorf("URL scheme must be https, http or file, got %q", u.Scheme)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// artifact is a resolved download: where it is, how to verify it.
type artifact struct {
	Name        string // what it is, for messages: "kubelet 1.33.1 linux/amd64"
	URL         string
	SumURL      string // published checksum document, when Pinned is ""
	SumFile     string // the name to look up in that document
	Pinned      string // sha256 from the plan
	Description string
}

// expandTemplate fills the named placeholders of a url template.
func expandTemplate(tmpl string, vals map[string]string) string {
	return placeholderPattern.ReplaceAllStringFunc(tmpl, func(ph string) string {
		return vals[ph[1:len(ph)-1]]
	})
}

// sourceFor is what a download step's fields say about one artifact, for
// validation: an explicit url replaces baseURL (which always has a default).
func sourceFor(version, baseURL, url, sha256 string) Source {
	s := Source{Version: version, URL: url, SHA256: sha256}
	if url == "" {
		s.BaseURL = baseURL
	}
	return s
}

// locate is an artifact's URL: the url template filled in with vals, or
// the upstream layout path under base.
func locate(tmpl string, vals map[string]string, base, layout string) string {
	if tmpl != "" {
		return expandTemplate(tmpl, vals)
	}
	return strings.TrimSuffix(base, "/") + "/" + layout
}

// linuxVals are the placeholders every artifact's url template may use.
func linuxVals(version, arch string) map[string]string {
	return map[string]string{"version": version, "arch": arch, "os": "linux"}
}

// key identifies the artifact's content source: its full URL (never stored
// as such, only digested, since it may hold credentials) and its pin.
func (a artifact) key() string {
	return stateKey([]string{a.URL, a.Pinned, a.SumURL})
}
