package engine

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Typed path parameters. Each checks and cleans itself when decoded and
// describes itself to the JSON Schema with a pattern, so the validator and
// the schema share one definition (the schema cannot clean a path, so it
// only sees the path as written: TestPathPatterns measures where they
// may differ).

// AbsPath is an absolute path other than /, cleaned ("/a/./b/" is "/a/b").
type AbsPath string

// absPathPattern: starts with /, and names something below it.
var absPathPattern = regexp.MustCompile(`^/+[^/]`)

func (p *AbsPath) UnmarshalText(b []byte) error {
	s := string(b)
	if !strings.HasPrefix(s, "/") {
		return fmt.Errorf("must be an absolute path, got %q", s)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("must not contain NUL, got %q", s)
	}
	clean := path.Clean(s)
	if clean == "/" {
		return fmt.Errorf("must name something below /, got %q", s)
	}
	*p = AbsPath(clean)
	return nil
}

func (AbsPath) JSONSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": absPathPattern.String()}
}

// String is the cleaned path.
func (p AbsPath) String() string { return string(p) }

// RelPath is a relative path that stays inside the directory it is
// relative to (a machine's root), cleaned, and not the directory itself.
type RelPath string

// relPathPattern: does not start with /, with .., or with . alone.
var relPathPattern = regexp.MustCompile(`^([^./]|\.[^./]|\.\.[^/]|\./+[^/.])`)

func (p *RelPath) UnmarshalText(b []byte) error {
	s := string(b)
	clean := path.Clean(s)
	switch {
	case strings.HasPrefix(s, "/"):
		return fmt.Errorf("must be relative to the machine's root, got %q", s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("must not contain NUL, got %q", s)
	case clean == "." || clean == ".." || strings.HasPrefix(clean, "../"):
		return fmt.Errorf("must name a directory inside the machine, got %q", s)
	}
	*p = RelPath(clean)
	return nil
}

func (RelPath) JSONSchema() map[string]any {
	return map[string]any{"type": "string", "pattern": relPathPattern.String()}
}

// String is the cleaned path.
func (p RelPath) String() string { return string(p) }
