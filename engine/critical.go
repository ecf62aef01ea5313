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

// criticalPath walks back from the step that ended last, each time to the
// need that ended last (the one it waited for), through steps that ran.
func criticalPath(p *Plan, steps []StepResult, total time.Duration) []PathStep {
	byID := make(map[string]StepResult, len(steps))
	var last *StepResult
	for i := range steps {
		s := &steps[i]
		if s.Started.IsZero() {
			continue
		}
		byID[s.ID] = *s
		if last == nil || stepEnd(*s).After(stepEnd(*last)) {
			last = s
		}
	}
	if last == nil {
		return nil
	}
	var rev []PathStep
	cur := *last
	for {
		share := 0.0
		if total > 0 {
			share = float64(cur.Duration) / float64(total)
		}
		rev = append(rev, PathStep{ID: cur.ID, Duration: cur.Duration, Share: share})
		var prev *StepResult
		for _, n := range p.byID[cur.ID].Needs {
			if r, ok := byID[n]; ok && (prev == nil || stepEnd(r).After(stepEnd(*prev))) {
				prev = &r
			}
		}
		if prev == nil {
			break
		}
		cur = *prev
	}
	out := make([]PathStep, len(rev))
	for i, s := range rev {
		out[len(rev)-1-i] = s
	}
	return out
}

func stepEnd(s StepResult) time.Time { return s.Started.Add(time.Duration(s.Duration)) }

// CriticalPathLine is the summary's line naming the critical path, or ""
// when no step ran.
func (r *Report) CriticalPathLine() string {
	if len(r.CriticalPath) == 0 {
		return ""
	}
	parts := make([]string, len(r.CriticalPath))
	var sum time.Duration
	for i, s := range r.CriticalPath {
		d := time.Duration(s.Duration)
		sum += d
		parts[i] = fmt.Sprintf("%s %s (%.0f%%)", s.ID, d.Round(time.Millisecond), 100*s.Share)
	}
	share := 0.0
	if r.Duration > 0 {
		share = 100 * float64(sum) / float64(r.Duration)
	}
	return fmt.Sprintf("critical path: %s; %.0f%% of %s", strings.Join(parts, " -> "), share, time.Duration(r.Duration).Round(time.Millisecond))
}
