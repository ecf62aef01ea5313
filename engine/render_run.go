package engine

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// StatusNotRun is how a run's graph shows a step the report does not list
// (the run selected other --targets, or stopped before the step's turn).
const StatusNotRun Status = "not-run"

// runOverlay is what an earlier run's report adds to the graph: each step's
// status and duration, and which needs lie on the critical path.
type runOverlay struct {
	rep      *Report
	byID     map[string]StepResult
	critical map[[2]string]bool // need -> step edges on the critical path
	onPath   map[string]bool
}

// RenderRun writes the graph like Render, coloured and labelled with the
// outcome of an earlier apply or plan of the same plan: each step's status
// and duration, and the critical path in bold. A report of another plan,
// or naming a step the plan lacks, is an error: the picture would lie.
func (g *Graph) RenderRun(w io.Writer, f Format, rep *Report) error {
	o, err := g.overlay(rep)
	if err != nil {
		return err
	}
	return g.render(w, f, o)
}

func (g *Graph) overlay(rep *Report) (*runOverlay, error) {
	switch {
	case rep.Plan == "":
		return nil, fmt.Errorf("the report names no plan (of a run that never loaded one)")
	case rep.Plan != g.plan.Name:
		return nil, fmt.Errorf("the report is of plan %q, not %q", rep.Plan, g.plan.Name)
	}
	if rep.Duration < 0 {
		return nil, fmt.Errorf("the run has a negative duration")
	}
	o := &runOverlay{rep: rep, byID: map[string]StepResult{}, critical: map[[2]string]bool{}, onPath: map[string]bool{}}
	var unknown []string
	for _, s := range rep.Steps {
		st, ok := g.plan.byID[s.ID]
		if !ok {
			unknown = append(unknown, s.ID)
			continue
		}
		if err := checkStepResult(s, st, o.byID); err != nil {
			return nil, err
		}
		o.byID[s.ID] = s
	}
	if !slices.Contains([]Outcome{OutcomeOK, OutcomeFailed, OutcomeInterrupted, OutcomePreflightFailed, OutcomeInvalid, OutcomeError}, rep.Status) {
		return nil, fmt.Errorf("run status %q is none that rootfsctl writes", rep.Status)
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("the report has %s that the plan lacks: %s (a report of another version of the plan?)",
			Plural(len(unknown), "step"), strings.Join(unknown, ", "))
	}
	for _, s := range rep.CriticalPath {
		if _, ok := o.byID[s.ID]; !ok {
			return nil, fmt.Errorf("the critical path names %s, which the report's steps lack", s.ID)
		}
	}
	for i, s := range rep.CriticalPath {
		o.onPath[s.ID] = true
		if i > 0 {
			o.critical[[2]string{rep.CriticalPath[i-1].ID, s.ID}] = true
		}
	}
	return o, nil
}

// checkStepResult refuses a step's result that no run of the plan's step
// could have written.
func checkStepResult(s StepResult, st *PlanStep, seen map[string]StepResult) error {
	if s.Type != "" && s.Type != st.Type {
		return fmt.Errorf("step %s is a %s step in the report and a %s step in the plan (a report of another version of the plan?)", s.ID, s.Type, st.Type)
	}
	if !slices.Contains(runStatuses, s.Status) {
		return fmt.Errorf("step %s has status %q, which no run gives", s.ID, s.Status)
	}
	if _, dup := seen[s.ID]; dup {
		return fmt.Errorf("step %s appears twice in the report", s.ID)
	}
	if s.Duration < 0 || s.Attempts < 0 {
		return fmt.Errorf("step %s has a negative duration or attempt count", s.ID)
	}
	return nil
}

// status is a step's status in the run, StatusNotRun when absent.
func (o *runOverlay) status(id string) Status {
	if s, ok := o.byID[id]; ok {
		return s.Status
	}
	return StatusNotRun
}

// label is the run's line for a step: status, and duration when it ran.
func (o *runOverlay) label(id string) string {
	s, ok := o.byID[id]
	if !ok {
		return string(StatusNotRun)
	}
	out := string(s.Status)
	if s.Attempts > 0 {
		out += " " + roundDuration(time.Duration(s.Duration))
	}
	if s.Attempts > 1 {
		out += fmt.Sprintf(" (%d attempts)", s.Attempts)
	}
	return out
}

// title is the run's summary for the graph's caption; how the critical
// path shows depends on the picture.
func (o *runOverlay) title(how string) string {
	t := fmt.Sprintf("run: %s in %s", o.rep.Status, roundDuration(time.Duration(o.rep.Duration)))
	if len(o.rep.CriticalPath) > 0 {
		t += "; critical path " + how
	}
	return t
}

// statusStyle is a status's fill and border colour, shared by DOT and
// Mermaid so that the two pictures read the same.
func statusStyle(s Status) (fill, stroke string) {
	switch s {
	case StatusChanged:
		return "#c6efce", "#2e7d32"
	case StatusUnchanged:
		return "#f2f2f2", "#7f7f7f"
	case StatusWouldChange:
		return "#ffeb9c", "#9c6500"
	case StatusFailed:
		return "#ffc7ce", "#c00000"
	case StatusCancelled:
		return "#fce4d6", "#c55a11"
	case StatusBlocked:
		return "#d9d9d9", "#595959"
	}
	return "#ffffff", "#bfbfbf" // not run
}

// runStatuses are the statuses a run gives a step; allStatuses adds the
// one a graph gives a step the run did not list, in a fixed order.
var (
	runStatuses = []Status{StatusChanged, StatusUnchanged, StatusWouldChange, StatusFailed, StatusCancelled, StatusBlocked}
	allStatuses = append(slices.Clip(runStatuses), StatusNotRun)
)

// mermaidRun adds a run's colours: one class per status that occurs, each
// step in its status's class, and the critical path's edges in bold.
func (g *Graph) mermaidRun(b *strings.Builder, o *runOverlay, nid func(string) string, bold []string) {
	used := map[Status][]string{}
	for _, id := range g.order {
		st := o.status(id)
		used[st] = append(used[st], nid(id))
	}
	for _, st := range allStatuses {
		ids := used[st]
		if len(ids) == 0 {
			continue
		}
		fill, stroke := statusStyle(st)
		class := strings.ReplaceAll(string(st), "-", "_")
		fmt.Fprintf(b, "  classDef %s fill:%s,stroke:%s\n  class %s %s\n", class, fill, stroke, strings.Join(ids, ","), class)
	}
	for _, id := range g.order {
		if o.onPath[id] {
			fmt.Fprintf(b, "  style %s stroke-width:3px\n", nid(id))
		}
	}
	if len(bold) > 0 {
		fmt.Fprintf(b, "  linkStyle %s stroke-width:3px\n", strings.Join(bold, ","))
	}
}

// roundDuration shows a duration to the millisecond, or to the microsecond
// below one millisecond (a step that found nothing to do).
func roundDuration(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
