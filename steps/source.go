package steps

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

var placeholderPattern = regexp.MustCompile(`\{[^{}]*\}`)

// Source is where an artifact comes from: the upstream release layout
// under another prefix (baseURL), or a whole URL template (url). Every
// download step embeds it; an empty Source is the upstream release.
type Source struct {
	BaseURL URL         `yaml:"baseURL" jsonschema_description:"Replaces the upstream prefix (the step type's doc names it); the release layout below it is kept."`
	URL     URLTemplate `yaml:"url" jsonschema_description:"Whole-URL template with {version}, {arch} and {os} (download-kube adds {binary}); the checksum is looked up beside it as the step type's doc says. Not with baseURL."`
}

// Release is one versioned artifact: its version, its source and an
// optional pin.
type Release struct {
	Version Version `yaml:"version" jsonschema_description:"Version, without a leading v."`
	Source  `yaml:",inline"`
	SHA256  Digest `yaml:"sha256" jsonschema_description:"Pinned SHA-256 of the downloaded file, checked instead of the published checksum."`
}

// ExtendSchema is the schema's half of Source.problems: url and baseURL
// exclude each other. Every struct embedding a Source inherits it.
func (Source) ExtendSchema(s map[string]any) {
	s["not"] = map[string]any{"required": []string{"url", "baseURL"}}
}

// problems checks what the typed fields cannot: the url template's
// placeholders (allowed lists them) and that url and baseURL are not both
// set. prefix is the source's path in the step's parameters ("" or
// "crictl.").
func (s Source) problems(prefix string, allowed ...string) engine.FieldErrors {
	var errs engine.FieldErrors
	bad := func(format string, args ...any) {
		errs = append(errs, engine.FieldError{Path: prefix + "url", Message: fmt.Sprintf(format, args...), Uses: []string{prefix + "baseURL"}})
	}
	if s.URL == "" {
		return nil
	}
	for _, ph := range placeholderPattern.FindAllString(string(s.URL), -1) {
		if !slices.Contains(allowed, ph[1:len(ph)-1]) {
			bad("unknown placeholder %s (allowed: {%s})", ph, strings.Join(allowed, "}, {"))
		}
	}
	if err := checkURL(placeholderPattern.ReplaceAllString(string(s.URL), "x")); err != nil {
		bad("%v", err)
	}
	if s.BaseURL != "" {
		bad("set url or baseURL, not both")
	}
	return errs
}

// locate is the artifact's URL: the url template filled in with vals, or
// layout under baseURL (upstream when baseURL is empty).
func (s Source) locate(vals map[string]string, upstream, layout string) string {
	if s.URL != "" {
		return expandTemplate(string(s.URL), vals)
	}
	base := string(s.BaseURL)
	if base == "" {
		base = upstream
	}
	p, rest := splitQuery(base)
	return strings.TrimSuffix(p, "/") + "/" + layout + rest
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

// expandTemplate fills the named placeholders of a url template.
func expandTemplate(tmpl string, vals map[string]string) string {
	return placeholderPattern.ReplaceAllStringFunc(tmpl, func(ph string) string {
		return vals[ph[1:len(ph)-1]]
	})
}

// splitQuery splits a URL before its query or fragment, which belong at the
// end whatever is added to the path (a signed mirror URL's token).
func splitQuery(u string) (path, rest string) {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i], u[i:]
	}
	return u, ""
}

// withSuffix adds suffix to the URL's path: the checksum beside a file.
func withSuffix(u, suffix string) string {
	p, rest := splitQuery(u)
	return p + suffix + rest
}

// sibling replaces the last element of the URL's path with name.
func sibling(u, name string) string {
	p, rest := splitQuery(u)
	return p[:strings.LastIndex(p, "/")+1] + name + rest
}

// linuxVals are the placeholders every artifact's url template may use.
func linuxVals(version Version, arch Arch) map[string]string {
	return map[string]string{"version": string(version), "arch": string(arch), "os": "linux"}
}
