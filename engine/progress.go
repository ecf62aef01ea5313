package engine

import "context"

// Progress receives the progress of long transfers (downloads, unpacking).
// cmd decides how to show it: a bar on a terminal, log lines otherwise.
type Progress interface {
	// Track starts tracking one transfer; total is -1 when unknown.
	Track(name string, total int64) Tracker
}

// Tracker is one transfer's progress.
type Tracker interface {
	Add(n int64)
	Done()
}

type progressKey struct{}

type stepIDsKey struct{}

// withStepIDs returns a context that tells steps which step ids the plan
// being run has (a step may hold state on disk under its id, and state
// left by a step the plan no longer has is stale).
func withStepIDs(ctx context.Context, ids map[string]bool) context.Context {
	return context.WithValue(ctx, stepIDsKey{}, ids)
}

// PlanHasStep reports whether the plan being run has a step id, and
// whether the context knows the plan at all.
func PlanHasStep(ctx context.Context, id string) (has, known bool) {
	ids, ok := ctx.Value(stepIDsKey{}).(map[string]bool)
	if !ok {
		return false, false
	}
	return ids[id], true
}

// WithProgress returns a context whose steps report progress to p (Apply
// does this with its options; commands that call steps directly, too).
func WithProgress(ctx context.Context, p Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// ProgressFrom returns the context's Progress, or one that discards.
func ProgressFrom(ctx context.Context) Progress {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok && p != nil {
		return p
	}
	return nopProgress{}
}

type nopProgress struct{}

func (nopProgress) Track(string, int64) Tracker { return nopTracker{} }

type nopTracker struct{}

func (nopTracker) Add(int64) {}
func (nopTracker) Done()     {}
