package engine

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Format names a graph rendering.
type Format string

const (
	FormatText    Format = "text"
	FormatDOT     Format = "dot"
	FormatMermaid Format = "mermaid"
	FormatJSON    Format = "json"
)

// Render writes the graph in the given format. Steps appear in topological
// order, so the output is stable for a given plan.
func (g *Graph) Render(w io.Writer, f Format) error { return g.render(w, f, nil) }

// render writes the graph, with a run's outcome when o is set.
func (g *Graph) render(w io.Writer, f Format, o *runOverlay) error {
	switch f {
	case FormatText:
		return g.renderText(w, o)
	case FormatDOT:
		return g.renderDOT(w, o)
	case FormatMermaid:
		return g.renderMermaid(w, o)
	case FormatJSON:
		return g.renderJSON(w, o)
	}
	return fmt.Errorf("unknown graph format %q (text, dot, mermaid, json)", f)
}

func (g *Graph) stages() [][]string {
	var out [][]string
	for _, id := range g.order {
		st := g.stage[id]
		for len(out) < st {
			out = append(out, nil)
		}
		out[st-1] = append(out[st-1], id)
	}
	for _, ids := range out {
		sort.Slice(ids, func(i, j int) bool { return g.index[ids[i]] < g.index[ids[j]] })
	}
	return out
}

func (g *Graph) edgeCount() int {
	n := 0
	for _, s := range g.plan.Steps {
		n += len(s.Needs)
	}
	return n
}

func (g *Graph) renderText(w io.Writer, o *runOverlay) error {
	b := &strings.Builder{}
	stages := g.stages()
	fmt.Fprintf(b, "plan %s: %s, %s, %s\n", g.plan.Name, Plural(len(g.order), "step"), Plural(g.edgeCount(), "dependency"), Plural(len(stages), "stage"))
	if o != nil {
		fmt.Fprintf(b, "%s\n", o.title("marked"))
	}
	for i, ids := range stages {
		label := "runs first"
		if i > 0 {
			label = "starts as soon as its needs finish"
		}
		fmt.Fprintf(b, "stage %d (%s)\n", i+1, label)
		for _, id := range ids {
			s := g.plan.byID[id]
			fmt.Fprintf(b, "  %s [%s]", id, s.Type)
			if o != nil {
				mark := ""
				if o.onPath[id] {
					mark = ", critical path"
				}
				fmt.Fprintf(b, " {%s%s}", o.label(id), mark)
			}
			if len(s.Needs) > 0 {
				fmt.Fprintf(b, " <- %s", strings.Join(s.Needs, ", "))
			}
			if _, ok := s.Impl.(Prefetcher); ok && len(s.Needs) > 0 {
				b.WriteString(" (downloads start with the run)")
			}
			if s.Description != "" {
				fmt.Fprintf(b, "  # %s", oneLine(s.Description))
			}
			b.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (g *Graph) renderDOT(w io.Writer, o *runOverlay) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "digraph %q {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n", g.plan.Name)
	if o != nil {
		fmt.Fprintf(b, "  label=%q;\n  labelloc=t;\n  fontname=\"Helvetica\";\n", o.title("in bold"))
	}
	for i, ids := range g.stages() {
		fmt.Fprintf(b, "  subgraph stage_%d {\n    rank=same;\n", i+1)
		for _, id := range ids {
			label := id + "\n" + g.plan.byID[id].Type
			if o == nil {
				fmt.Fprintf(b, "    %q [label=%q];\n", id, label)
				continue
			}
			fill, stroke := statusStyle(o.status(id))
			width := 1.0
			if o.onPath[id] {
				width = 3
			}
			fmt.Fprintf(b, "    %q [label=%q, style=\"rounded,filled\", fillcolor=%q, color=%q, penwidth=%g];\n", id, label+"\n"+o.label(id), fill, stroke, width)
		}
		b.WriteString("  }\n")
	}
	for _, id := range g.order {
		for _, n := range g.plan.byID[id].Needs {
			if o != nil && o.critical[[2]string{n, id}] {
				fmt.Fprintf(b, "  %q -> %q [penwidth=3];\n", n, id)
				continue
			}
			fmt.Fprintf(b, "  %q -> %q;\n", n, id)
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (g *Graph) renderMermaid(w io.Writer, o *runOverlay) error {
	// Mermaid reserves words such as "end", so nodes get neutral ids and the
	// step id goes in the label.
	b := &strings.Builder{}
	b.WriteString("flowchart LR\n")
	nid := func(id string) string { return fmt.Sprintf("s%d", g.index[id]) }
	for _, id := range g.order {
		small := g.plan.byID[id].Type
		if o != nil {
			small += " · " + o.label(id)
		}
		fmt.Fprintf(b, "  %s[\"%s<br/><small>%s</small>\"]\n", nid(id), id, small)
	}
	edge := 0
	var bold []string
	for _, id := range g.order {
		for _, n := range g.plan.byID[id].Needs {
			fmt.Fprintf(b, "  %s --> %s\n", nid(n), nid(id))
			if o != nil && o.critical[[2]string{n, id}] {
				bold = append(bold, fmt.Sprint(edge))
			}
			edge++
		}
	}
	if o != nil {
		g.mermaidRun(b, o, nid, bold)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type graphJSON struct {
	Name  string          `json:"name"`
	Run   *graphJSONRun   `json:"run,omitempty"` // with --report
	Steps []graphJSONStep `json:"steps"`
	Edges []graphJSONEdge `json:"edges"`
}

type graphJSONRun struct {
	Status   Outcome `json:"status"`
	Duration Millis  `json:"durationMs"`
}

type graphJSONStep struct {
	ID          string   `json:"id"`
	Type        string   `json:"type"`
	Description string   `json:"description,omitempty"`
	Needs       []string `json:"needs"`
	Stage       int      `json:"stage"`
	Prefetch    bool     `json:"prefetch,omitempty"` // part of its work starts with the run
	// With --report: the step's outcome in that run.
	Status   Status  `json:"status,omitempty"`
	Duration *Millis `json:"durationMs,omitempty"`
	Attempts int     `json:"attempts,omitempty"`
	Critical bool    `json:"critical,omitempty"`
}

type graphJSONEdge struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Critical bool   `json:"critical,omitempty"`
}

func (g *Graph) renderJSON(w io.Writer, o *runOverlay) error {
	out := graphJSON{Name: g.plan.Name, Steps: []graphJSONStep{}, Edges: []graphJSONEdge{}}
	if o != nil {
		out.Run = &graphJSONRun{Status: o.rep.Status, Duration: o.rep.Duration}
	}
	for _, id := range g.order {
		s := g.plan.byID[id]
		needs := append([]string{}, s.Needs...)
		_, pf := s.Impl.(Prefetcher)
		js := graphJSONStep{ID: id, Type: s.Type, Description: s.Description, Needs: needs, Stage: g.stage[id], Prefetch: pf}
		if o != nil {
			r := o.byID[id]
			js.Status, js.Critical = o.status(id), o.onPath[id]
			if r.Attempts > 0 {
				d := r.Duration
				js.Duration, js.Attempts = &d, r.Attempts
			}
		}
		out.Steps = append(out.Steps, js)
		for _, n := range s.Needs {
			out.Edges = append(out.Edges, graphJSONEdge{From: n, To: id, Critical: o != nil && o.critical[[2]string{n, id}]})
		}
	}
	return writeJSON(w, out)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
