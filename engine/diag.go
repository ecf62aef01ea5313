package engine

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is a position in a plan file. Line and Col are 1-based; zero means unknown.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

func nodePos(file string, n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: file}
	}
	return Pos{File: file, Line: n.Line, Col: n.Column}
}

// Diagnostic is one problem found in a plan, with the position it belongs to.
type Diagnostic struct {
	Pos
	Message string `json:"message"`
}

func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Message }

// Diagnostics is every problem found in one or more plans. It is an error so
// that loaders can return it; callers that need the list use errors.As.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Sort orders diagnostics by file, line, column, then message, and drops exact
// duplicates (one bad value can be reached twice, e.g. through a default).
func (ds Diagnostics) Sort() Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Message < b.Message
	})
	out := ds[:0]
	for i, d := range ds {
		if i > 0 && d == ds[i-1] {
			continue
		}
		out = append(out, d)
	}
	return out
}

// diags collects diagnostics for one file.
type diags struct {
	file  string
	list  Diagnostics
	spent int   // YAML nodes visited, against maxPlanNodes
	bytes int   // bytes of expanded values, against maxExpandedBytes
	hints hints // "did you mean", within one budget for the plan
	// merged remembers each mapping's pairs with merge keys expanded.
	merged map[*yaml.Node][][2]*yaml.Node
}

// spendBytes counts n bytes of expanded values; past the budget it reports
// once and returns false.
func (d *diags) spendBytes(n int, at *yaml.Node) bool {
	before := d.bytes
	d.bytes += n
	if d.bytes > maxExpandedBytes && before <= maxExpandedBytes {
		d.at(at, "plan expands to more than %s of values (variables used many times); refusing to go on", byteSize(maxExpandedBytes))
	}
	return d.bytes <= maxExpandedBytes
}

// spend counts one visited node; past the budget it reports once and
// returns false.
func (d *diags) spend(n *yaml.Node) bool {
	d.spent++
	if d.spent == maxPlanNodes+1 {
		d.at(n, "plan expands to more than %d YAML nodes (aliases included); refusing to go on", maxPlanNodes)
	}
	return d.spent <= maxPlanNodes
}

func (d *diags) at(n *yaml.Node, format string, args ...any) {
	d.list = append(d.list, Diagnostic{Pos: nodePos(d.file, n), Message: fmt.Sprintf(format, args...)})
}

func (d *diags) atPos(p Pos, format string, args ...any) {
	d.list = append(d.list, Diagnostic{Pos: p, Message: fmt.Sprintf(format, args...)})
}
