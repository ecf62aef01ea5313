package engine

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	goccy "github.com/goccy/go-yaml"
	goccylexer "github.com/goccy/go-yaml/lexer"
	goccyparser "github.com/goccy/go-yaml/parser"
	goccytoken "github.com/goccy/go-yaml/token"
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
	if line, col, ok := placeUnplaced(data, p.msg); ok {
		p.pos.Line, p.pos.Col = line, col
	}
	hint := flowHint(data, p.pos.Line)
	if !strings.Contains(p.msg, "tab") {
		hint += tabHint(data, p.pos.Line)
	}
	p.msg = "invalid YAML: " + p.msg + hint
	return p
}

// placeUnplaced finds the problems yaml.v3 reports without a position
// (goccy accepts them, or fails elsewhere): a byte that is not UTF-8, a
// control character, an alias of an anchor not defined before it.
func placeUnplaced(data []byte, msg string) (line, col int, ok bool) {
	if i := invalidUTF8(data); i >= 0 {
		line, col = offsetPos(data, i)
		return line, col, true
	}
	if strings.Contains(msg, "control characters are not allowed") {
		if i := controlChar(data); i >= 0 {
			line, col = offsetPos(data, i)
			return line, col, true
		}
	}
	if rest, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
		if name, ok := strings.CutSuffix(rest, "' referenced"); ok {
			return aliasPos(data, name)
		}
	}
	return 0, 0, false
}

// offsetPos is the line and column (in characters) of a byte offset.
func offsetPos(data []byte, i int) (line, col int) {
	start := bytes.LastIndexByte(data[:i], '\n') + 1
	return 1 + bytes.Count(data[:start], []byte("\n")), 1 + utf8.RuneCount(data[start:i])
}

// controlChar is the offset of the first character YAML does not allow
// in a document (yaml.v3's test), or -1.
func controlChar(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == '\t' || r == '\n' || r == '\r', r >= 0x20 && r <= 0x7E, r == 0x85,
			r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		default:
			return i
		}
		i += size
	}
	return -1
}

// aliasPos is the position of the first alias of anchor name.
func aliasPos(data []byte, name string) (line, col int, ok bool) {
	tokens := goccylexer.Tokenize(string(data))
	for i, tk := range tokens {
		if tk.Type == goccytoken.AliasType && i+1 < len(tokens) && tokens[i+1].Value == name && tk.Position != nil {
			return tk.Position.Line, max(tk.Position.Column, 1), true
		}
	}
	return 0, 0, false
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
