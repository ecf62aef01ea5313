package engine

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
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
	// last sorts it after the other diagnostics of its file: the line
	// that counts the problems not listed, more of them.
	last bool
	more int
}

func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Message }

// Diagnostics is every problem found in one or more plans. It is an error so
// that loaders can return it; callers that need the list use errors.As.
type Diagnostics []Diagnostic

// Count is how many problems ds stands for: those listed, and those a
// last line counts without listing them.
func (ds Diagnostics) Count() int {
	n := 0
	for _, d := range ds {
		if d.more > 0 {
			n += d.more
		} else {
			n++
		}
	}
	return n
}

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
		if a.last != b.last {
			return b.last
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

// maxDiagnostics bounds how many problems are listed for one plan: through
// aliases one bad value can be reached a million times, and a list that
// long helps nobody. Past it, problems are counted, and one line at the
// end of the file's list says how many more there are.
const maxDiagnostics = 1000

// maxMessageBytes bounds one message; a longer one (a long value quoted in
// it) keeps its beginning and its end.
const maxMessageBytes = 4 << 10

// diags collects diagnostics for one file.
type diags struct {
	file string
	list Diagnostics
	// found counts every problem reported, listed or not, repeated or
	// not: a phase knows from it whether it found any.
	found int
	// seen holds a hash of each problem listed or counted: its position
	// and its message without the name of the value, so that one problem
	// reached under several names (through aliases or merge keys) is
	// reported once.
	seen map[uint64]bool
	seed maphash.Seed
	more int // problems past maxDiagnostics, each counted once
	// badScalars holds the source scalars whose expansion failed (and
	// was reported): a use through an alias fails without a second look.
	badScalars map[*yaml.Node]bool
	spent      int   // YAML nodes visited, against maxPlanNodes
	bytes      int   // bytes of expanded values, against maxExpandedBytes
	hints      hints // "did you mean", within one budget for the plan
	// merged remembers each mapping's pairs with merge keys expanded.
	merged map[*yaml.Node][][2]*yaml.Node
}

// spendBytes counts n bytes of expanded values; past the budget it reports
// once and returns false.
func (d *diags) spendBytes(n int, at *yaml.Node) bool {
	before := d.bytes
	d.bytes += n
	if d.bytes > maxExpandedBytes && before <= maxExpandedBytes {
		d.at(at, "plan expands to more than %s of values (variables or aliases used many times); refusing to go on", byteSize(maxExpandedBytes))
	}
	return d.bytes <= maxExpandedBytes
}

// spend counts one visited node; past the budget it reports once and
// returns false. Once either budget is spent, nothing more is read.
func (d *diags) spend(n *yaml.Node) bool {
	if d.refused() {
		return false
	}
	d.spent++
	if d.spent == maxPlanNodes+1 {
		d.at(n, "plan expands to more than %d YAML nodes (aliases included); refusing to go on", maxPlanNodes)
	}
	return d.spent <= maxPlanNodes
}

// refused reports whether a budget was spent: the plan is refused, and
// what is read after would only be missing.
func (d *diags) refused() bool {
	return d.spent > maxPlanNodes || d.bytes > maxExpandedBytes
}

func (d *diags) at(n *yaml.Node, format string, args ...any) {
	d.add(nodePos(d.file, n), "", fmt.Sprintf(format, args...), nil)
}

func (d *diags) atPos(p Pos, format string, args ...any) {
	d.add(p, "", fmt.Sprintf(format, args...), nil)
}

// named reports a problem with the value called name ("a.with.path"),
// which starts the message.
func (d *diags) named(p Pos, name, format string, args ...any) {
	d.add(p, name, fmt.Sprintf(format, args...), nil)
}

// hinted is named with a hint ending the message, made only when the
// problem is listed: a "did you mean" has its cost.
func (d *diags) hinted(p Pos, name string, hint func() string, format string, args ...any) {
	d.add(p, name, fmt.Sprintf(format, args...), hint)
}

// add lists a problem, unless the same message was given at the same
// position (under any name, whatever the hint), or maxDiagnostics are
// listed: then it is only counted.
func (d *diags) add(p Pos, name, msg string, hint func() string) {
	d.found++
	if d.seen == nil {
		d.seen, d.seed = map[uint64]bool{}, maphash.MakeSeed()
	}
	var h maphash.Hash
	h.SetSeed(d.seed)
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], uint64(p.Line))
	binary.LittleEndian.PutUint64(buf[8:], uint64(p.Col))
	_, _ = h.Write(buf[:])
	_, _ = h.WriteString(msg)
	key := h.Sum64()
	if d.seen[key] {
		return
	}
	d.seen[key] = true
	if len(d.list) >= maxDiagnostics {
		d.more++
		return
	}
	if hint != nil {
		msg += hint()
	}
	d.list = append(d.list, Diagnostic{Pos: p, Message: elide(pre(name) + msg)})
}

// elide shortens a message past maxMessageBytes in its middle.
func elide(msg string) string {
	if len(msg) <= maxMessageBytes {
		return msg
	}
	head, tail := msg[:maxMessageBytes/2], msg[len(msg)-maxMessageBytes/4:]
	return strings.ToValidUTF8(head, "") + fmt.Sprintf(" … (%d bytes) … ", len(msg)) + strings.ToValidUTF8(tail, "")
}

// sorted is the problems found, sorted, with a last line counting those
// not listed.
func (d *diags) sorted() Diagnostics {
	ds := d.list.Sort()
	if d.more > 0 {
		ds = append(ds, Diagnostic{Pos: Pos{File: d.file}, last: true, more: d.more,
			Message: fmt.Sprintf("and %s not listed (the first %d found are)", Plural(d.more, "more problem"), maxDiagnostics)})
	}
	return ds
}
