package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// PathStep is one step on a run's critical path: the chain of steps, each
// waiting for the one before, that ended last and so set the run's length.
type PathStep struct {
	ID       string `json:"id"`
	Duration Millis `json:"durationMs"`
	// Share is the step's part of the whole run's duration (locks, checks
	// and preflight included), from 0 to 1.
	Share float64 `json:"share"`
}

// releaseSlack is how long after a step ends the step it released may
// start and still count as started by it (scheduling takes a moment).
const releaseSlack = 2 * time.Millisecond

// criticalPath walks back from the step that ended last. Each step was
// started by whatever ended last before it: its last need, or, when it
// waited for a free slot of the budget, the step that freed it. Of two that
// ended within releaseSlack of each other, a need is preferred. It takes
// time linear in the steps and their needs, plus a binary search per step
// on the path, so a plan of 10,000 steps costs no more than its run.
func criticalPath(p *Plan, steps []StepResult, total time.Duration) []PathStep {
	w := newWalk(steps)
	if len(w.byEnd) == 0 {
		return nil
	}
	cur := w.earliestOfLast(len(w.byEnd) - 1)
	var rev []PathStep
	for {
		share := 0.0
		if total > 0 {
			share = float64(cur.Duration) / float64(total)
		}
		rev = append(rev, PathStep{ID: cur.ID, Duration: cur.Duration, Share: share})
		w.on[cur.ID] = true
		prev, ok := w.releasedBy(p, cur)
		if !ok {
			break
		}
		cur = prev
	}
	out := make([]PathStep, len(rev))
	for i, s := range rev {
		out[len(rev)-1-i] = s
	}
	return out
}

// walk is what the walk back along the critical path looks up: the steps
// that ran, by id and in the order they ended, the run's first start, and
// the steps already on the path.
type walk struct {
	byID  map[string]StepResult
	pos   map[string]int // place in the plan's order, which breaks ties
	byEnd []StepResult
	first time.Time
	on    map[string]bool
}

func newWalk(steps []StepResult) *walk {
	w := &walk{byID: map[string]StepResult{}, pos: map[string]int{}, on: map[string]bool{}}
	for i, s := range steps {
		if s.Started.IsZero() {
			continue
		}
		w.byID[s.ID], w.pos[s.ID] = s, i
		w.byEnd = append(w.byEnd, s)
		if w.first.IsZero() || s.Started.Before(w.first) {
			w.first = s.Started
		}
	}
	// Stable: of steps that ended at once, the first in the plan's order
	// counts as ending first.
	sort.SliceStable(w.byEnd, func(i, k int) bool { return stepEnd(w.byEnd[i]).Before(stepEnd(w.byEnd[k])) })
	return w
}

// releasedBy is the step whose end let cur start. When cur started as soon
// as its needs had ended (or with the run, having none), that is its last
// need, or nothing. When it waited longer, for a free slot, it is the step
// that ended last before it started.
func (w *walk) releasedBy(p *Plan, cur StepResult) (StepResult, bool) {
	var lastNeed StepResult
	haveNeed := false
	for _, id := range p.byID[cur.ID].Needs {
		s, ran := w.byID[id]
		if !ran {
			continue
		}
		if !haveNeed || stepEnd(s).After(stepEnd(lastNeed)) || stepEnd(s).Equal(stepEnd(lastNeed)) && w.pos[id] < w.pos[lastNeed.ID] {
			lastNeed, haveNeed = s, true
		}
	}
	ready := w.first
	if haveNeed {
		ready = stepEnd(lastNeed)
	}
	if cur.Started.Sub(ready) <= releaseSlack {
		return lastNeed, haveNeed && !w.on[lastNeed.ID]
	}
	// The last step to end by cur's start (with the slack) that is not on
	// the path yet.
	limit := cur.Started.Add(releaseSlack)
	i := sort.Search(len(w.byEnd), func(i int) bool { return stepEnd(w.byEnd[i]).After(limit) })
	for i--; i >= 0; i-- {
		if !w.on[w.byEnd[i].ID] {
			return w.earliestOfLast(i), true
		}
	}
	return StepResult{}, false
}

// earliestOfLast is, of the steps not on the path that ended when
// byEnd[i] did, the first in the plan's order (byEnd keeps that order
// among equal ends).
func (w *walk) earliestOfLast(i int) StepResult {
	best := i
	for k := i - 1; k >= 0 && stepEnd(w.byEnd[k]).Equal(stepEnd(w.byEnd[i])); k-- {
		if !w.on[w.byEnd[k].ID] {
			best = k
		}
	}
	return w.byEnd[best]
}

func stepEnd(s StepResult) time.Time { return s.Started.Add(time.Duration(s.Duration)) }

// maxPathShown bounds the steps the summary line names; the report has
// them all.
const maxPathShown = 6

// CriticalPathLine is the summary's line naming the critical path, or ""
// when no step ran. A long path shows its first and last steps.
func (r *Report) CriticalPathLine() string {
	if len(r.CriticalPath) == 0 {
		return ""
	}
	var parts []string
	var sum time.Duration
	for i, s := range r.CriticalPath {
		d := time.Duration(s.Duration)
		sum += d
		n := len(r.CriticalPath)
		switch {
		case n <= maxPathShown || i < maxPathShown/2 || i >= n-maxPathShown/2:
			parts = append(parts, fmt.Sprintf("%s %s (%.0f%%)", s.ID, roundDuration(d), 100*s.Share))
		case i == maxPathShown/2:
			parts = append(parts, fmt.Sprintf("(%d more)", n-maxPathShown))
		}
	}
	share := 0.0
	if r.Duration > 0 {
		share = 100 * float64(sum) / float64(r.Duration)
	}
	return fmt.Sprintf("critical path: %s; %.0f%% of %s", strings.Join(parts, " -> "), share, roundDuration(time.Duration(r.Duration)))
}
