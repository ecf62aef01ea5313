// Package trace carries an optional span recorder through a context, so
// that any layer (the engine's scheduler, a step, the image fetcher) can
// mark what it spends time on without knowing who records it or how it is
// written out. Without a recorder every call is a no-op costing a context
// lookup.
package trace

import "context"

// Recorder records spans. Begin starts one on a track (a row of the
// picture: a step, a transfer, a background fetch) and returns the function
// that ends it; args are extra facts shown with the span.
type Recorder interface {
	Begin(track, name string, args map[string]any) (end func(args map[string]any))
}

type recorderKey struct{}
type trackKey struct{}

// With returns ctx carrying r.
func With(ctx context.Context, r Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// OnTrack returns ctx whose spans go on track.
func OnTrack(ctx context.Context, track string) context.Context {
	if ctx.Value(recorderKey{}) == nil {
		return ctx
	}
	return context.WithValue(ctx, trackKey{}, track)
}

// Enabled reports whether ctx records spans.
func Enabled(ctx context.Context) bool { return ctx.Value(recorderKey{}) != nil }

// Track is ctx's track ("" when none was set).
func Track(ctx context.Context) string {
	t, _ := ctx.Value(trackKey{}).(string)
	return t
}

// Span starts a span named name on ctx's track; call the result to end it.
func Span(ctx context.Context, name string) func() {
	r, ok := ctx.Value(recorderKey{}).(Recorder)
	if !ok {
		return func() {}
	}
	end := r.Begin(Track(ctx), name, nil)
	return func() { end(nil) }
}

// SpanOn starts a span on a track of its own, with args; the returned
// function ends it and may add args (bytes moved, an error).
func SpanOn(ctx context.Context, track, name string, args map[string]any) func(map[string]any) {
	r, ok := ctx.Value(recorderKey{}).(Recorder)
	if !ok {
		return func(map[string]any) {}
	}
	return r.Begin(track, name, args)
}
