package trace

import (
	"context"
	"sync"
	"testing"
)

type rec struct {
	mu    sync.Mutex
	spans []string
}

func (r *rec) Begin(track, name string, args map[string]any) func(map[string]any) {
	return func(more map[string]any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.spans = append(r.spans, track+"/"+name)
	}
}

// Without a recorder nothing is recorded and no track is kept; with one,
// spans go on the context's track, or on the one given.
func TestSpans(t *testing.T) {
	ctx := OnTrack(context.Background(), "ignored")
	if Enabled(ctx) || Track(ctx) != "" {
		t.Fatal("a context without a recorder keeps a track")
	}
	Span(ctx, "x")()
	SpanOn(ctx, "t", "y", nil)(nil)
	r := &rec{}
	ctx = OnTrack(With(context.Background(), r), "step a")
	end := Span(ctx, "outer")
	Span(OnTrack(ctx, "step b"), "inner")()
	end()
	SpanOn(ctx, "transfer x", "x", map[string]any{"k": 1})(nil)
	want := []string{"step b/inner", "step a/outer", "transfer x/x"}
	if len(r.spans) != len(want) {
		t.Fatalf("spans %v, want %v", r.spans, want)
	}
	for i := range want {
		if r.spans[i] != want[i] {
			t.Errorf("span %d: %s, want %s", i, r.spans[i], want[i])
		}
	}
}
