package engine

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	goccy "github.com/goccy/go-yaml"
	goccyparser "github.com/goccy/go-yaml/parser"
)

// yaml.v3 decides whether a plan is well-formed, but its syntax errors carry
// only a line, and often the line where the enclosing construct began (one
// or more lines early) rather than the problem. goccy/go-yaml reports the
// line and column of the offending token, so a plan that yaml.v3 rejects is
// parsed again by goccy only to place the error; the message stays yaml.v3's.

// syntaxProblem is where and what the syntax error is.
type syntaxProblem struct {
	pos Pos
	msg string
}

func locateSyntaxError(file string, data []byte, err error) syntaxProblem {
	v3line := yamlV3Line(err)
	p := syntaxProblem{pos: Pos{File: file, Line: max(v3line, 1), Col: 1}, msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if _, rest, ok := strings.Cut(p.msg, ": "); ok && strings.HasPrefix(p.msg, "line ") {
		p.msg = rest
	}
	_, gerr := goccyparser.ParseBytes(data, 0)
	var se *goccy.SyntaxError
	if errors.As(gerr, &se) && se.Token != nil && se.Token.Position != nil {
		// yaml.v3's line is where the construct began: the problem is there
		// or later. Trust goccy when it agrees with that.
		if gl := se.Token.Position.Line; gl >= v3line-1 {
			p.pos.Line, p.pos.Col = gl, max(se.Token.Position.Column, 1)
		}
	}
	if i := invalidUTF8(data); i >= 0 {
		// yaml.v3 reports no position for it: count lines and columns.
		line := 1 + strings.Count(string(data[:i]), "\n")
		col := 1 + i - (strings.LastIndexByte(string(data[:i]), '\n') + 1)
		p.pos.Line, p.pos.Col = line, col
	}
	hint := flowHint(data, p.pos.Line)
	if !strings.Contains(p.msg, "tab") {
		hint += tabHint(data, p.pos.Line)
	}
	p.msg = "invalid YAML: " + p.msg + hint
	return p
}

// invalidUTF8 is the offset of the first byte that is not UTF-8, or -1.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// tabHint: YAML indentation is spaces only.
func tabHint(data []byte, line int) string {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) || !strings.Contains(lines[line-1], "\t") {
		return ""
	}
	return "; the line holds a tab: YAML indents with spaces only"
}

// yamlV3Line reads the line number out of a yaml.v3 error ("yaml: line 6: ...").
func yamlV3Line(err error) int {
	msg := err.Error()
	var line int
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i:], "line %d", &line)
	}
	return line
}

// flowHint explains the most common cause of a syntax error in plans: an
// unquoted ${...} inside a flow mapping or list, where { and } are syntax.
// The mapping may have begun lines before the error's.
func flowHint(data []byte, line int) string {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	depth := flowDepth(strings.Join(lines[:line-1], "\n") + "\n")
	text := lines[line-1]
	for i := 0; i < len(text); i++ {
		if strings.HasPrefix(text[i:], "${") && depth+flowDepth(text[:i]) > 0 {
			return "; a value with ${...} inside {...} or [...] must be quoted, as in {path: \"/tmp/${x}\"}"
		}
	}
	return ""
}

// flowDepth is how many flow collections ({ or [) text leaves open, with
// quoted strings, comments and ${...} references skipped. A reading good
// enough for a hint, not a YAML parser.
func flowDepth(text string) int {
	depth := 0
	for i := 0; i < len(text); i++ {
		if end, skip := skipFlowText(text, i); skip {
			i = end
			continue
		}
		switch c := text[i]; {
		case c == '{' || c == '[':
			depth++
		case (c == '}' || c == ']') && depth > 0:
			depth--
		}
	}
	return depth
}

// skipFlowText: when a quoted string, a comment or a ${...} reference
// starts at text[i], the offset of its last byte.
func skipFlowText(text string, i int) (end int, skip bool) {
	switch c := text[i]; {
	case c == '"' || c == '\'':
		if j := strings.IndexByte(text[i+1:], c); j >= 0 {
			return i + j + 1, true
		}
	case c == '#' && (i == 0 || text[i-1] == ' ' || text[i-1] == '\n'):
		if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
			return i + j, true
		}
		return len(text), true
	case c == '$' && strings.HasPrefix(text[i:], "${"):
		if j := strings.IndexByte(text[i:], '}'); j >= 0 {
			return i + j, true
		}
	}
	return i, false
}
