package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Status is what happened to one step in a run.
type Status string

const (
	StatusChanged     Status = "changed"      // applied
	StatusUnchanged   Status = "unchanged"    // already up to date
	StatusWouldChange Status = "would-change" // check-only run: Apply would change something
	StatusFailed      Status = "failed"
	StatusCancelled   Status = "cancelled" // stopped or never started because the run was cancelled
	StatusBlocked     Status = "blocked"   // a need failed, was cancelled or was blocked
)

func (s Status) succeeded() bool {
	return s == StatusChanged || s == StatusUnchanged || s == StatusWouldChange
}

// Outcome is how a whole run ended. Every JSON report carries one, so a
// consumer can tell a failed step from a plan that never ran.
type Outcome string

const (
	OutcomeOK              Outcome = "ok"
	OutcomeFailed          Outcome = "failed"           // a step failed, was blocked or was cancelled
	OutcomeInterrupted     Outcome = "interrupted"      // the run's context was cancelled from outside
	OutcomePreflightFailed Outcome = "preflight-failed" // nothing was changed
	OutcomeInvalid         Outcome = "invalid"          // the plan did not load; see diagnostics
	OutcomeError           Outcome = "error"            // the run could not start; see error
)

// Millis is a duration that JSON shows in milliseconds (with microsecond
// precision), the unit of every duration rootfsctl prints: report fields
// and log fields alike end in Ms.
type Millis time.Duration

func (m Millis) MarshalJSON() ([]byte, error) {
	ms := float64(m) / float64(time.Millisecond)
	return json.Marshal(math.Round(ms*1000) / 1000)
}

// maxMillis is the longest duration a Millis holds (about 292 years).
const maxMillis = float64(math.MaxInt64) / float64(time.Millisecond)

func (m *Millis) UnmarshalJSON(b []byte) error {
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return err
	}
	if math.IsNaN(ms) || ms > maxMillis || ms < -maxMillis {
		return fmt.Errorf("duration %v ms is out of range", ms)
	}
	*m = Millis(ms * float64(time.Millisecond))
	return nil
}

// StepResult is the outcome of one step.
type StepResult struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Status   Status    `json:"status"`
	Message  string    `json:"message,omitempty"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts"`
	Started  time.Time `json:"started,omitzero"`
	Duration Millis    `json:"durationMs"`
}

// Report is the outcome of a run, step by step in topological order. It is
// also the one JSON document printed when the run never started: then
// Diagnostics (invalid plan), Preflight (failed checks) or Error says why.
type Report struct {
	Plan        string           `json:"plan"`
	File        string           `json:"file"`
	CheckOnly   bool             `json:"checkOnly"`
	Status      Outcome          `json:"status"`
	Error       string           `json:"error,omitempty"`
	Diagnostics Diagnostics      `json:"diagnostics,omitempty"`
	Preflight   *PreflightReport `json:"preflight,omitempty"`
	Started     time.Time        `json:"started,omitzero"`
	Duration    Millis           `json:"durationMs"`
	Steps       []StepResult     `json:"steps"`
	// CriticalPath is the chain of steps that set the run's length.
	CriticalPath []PathStep `json:"criticalPath,omitempty"`
}

// Count returns how many steps ended with status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, st := range r.Steps {
		if st.Status == s {
			n++
		}
	}
	return n
}

// Failed reports whether the run did not end well.
func (r *Report) Failed() bool { return r.Status != OutcomeOK }

// Summary is "6 steps: 3 changed, 1 unchanged in 1.2s".
func (r *Report) Summary() string {
	var parts []string
	for _, s := range []Status{StatusChanged, StatusWouldChange, StatusUnchanged, StatusFailed, StatusBlocked, StatusCancelled} {
		if n := r.Count(s); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return fmt.Sprintf("%s: %s in %s", Plural(len(r.Steps), "step"), strings.Join(parts, ", "), time.Duration(r.Duration).Round(time.Millisecond))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// Plural is "1 step", "2 steps", "3 entries".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") && !strings.HasSuffix(noun, "ey") {
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
