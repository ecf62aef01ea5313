package engine

import (
	"fmt"
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
// ended within releaseSlack of each other, a need is preferred.
func criticalPath(p *Plan, steps []StepResult, total time.Duration) []PathStep {
	var ran []StepResult
	for _, s := range steps {
		if !s.Started.IsZero() {
			ran = append(ran, s)
		}
	}
	if len(ran) == 0 {
		return nil
	}
	cur := ran[0]
	for _, s := range ran[1:] {
		if stepEnd(s).After(stepEnd(cur)) {
			cur = s
		}
	}
	var rev []PathStep
	on := map[string]bool{}
	for {
		share := 0.0
		if total > 0 {
			share = float64(cur.Duration) / float64(total)
		}
		rev = append(rev, PathStep{ID: cur.ID, Duration: cur.Duration, Share: share})
		on[cur.ID] = true
		prev, ok := releasedBy(p, ran, cur, on)
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

// releasedBy is the step whose end let cur start. When cur started as soon
// as its needs had ended (or with the run, having none), that is its last
// need, or nothing. When it waited longer, for a free slot, it is the step
// that ended last before it started.
func releasedBy(p *Plan, ran []StepResult, cur StepResult, on map[string]bool) (StepResult, bool) {
	var lastNeed StepResult
	haveNeed := false
	ready := ran[0].Started // the run's first start, for a step without needs
	for _, s := range ran {
		if s.Started.Before(ready) {
			ready = s.Started
		}
	}
	for _, s := range ran {
		if contains(p.byID[cur.ID].Needs, s.ID) && (!haveNeed || stepEnd(s).After(stepEnd(lastNeed))) {
			lastNeed, haveNeed = s, true
		}
	}
	if haveNeed {
		ready = stepEnd(lastNeed)
	}
	if cur.Started.Sub(ready) <= releaseSlack {
		return lastNeed, haveNeed && !on[lastNeed.ID]
	}
	var best StepResult
	found := false
	for _, s := range ran {
		if !on[s.ID] && !stepEnd(s).After(cur.Started.Add(releaseSlack)) && (!found || stepEnd(s).After(stepEnd(best))) {
			best, found = s, true
		}
	}
	return best, found
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
