package engine

import (
	"errors"
	"fmt"
	"strings"

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
	p.msg = "invalid YAML: " + p.msg + flowHint(data, p.pos.Line)
	return p
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
func flowHint(data []byte, line int) string {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	text := lines[line-1]
	i := strings.Index(text, "${")
	if i < 0 || !strings.ContainsAny(text[:i], "{[") {
		return ""
	}
	return "; a value with ${...} inside {...} or [...] must be quoted, as in {path: \"/tmp/${x}\"}"
}
