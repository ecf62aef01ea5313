package main

import (
	"runtime/debug"
	"testing"
)

// TestApplyGC: an apply run collects at half the heap's growth, and leaves
// the collector alone when the environment sets GOGC (even to nothing).
func TestApplyGC(t *testing.T) {
	gc := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(gc) })
	applyGC(func(string) (string, bool) { return "", false })
	if got := debug.SetGCPercent(70); got != 50 {
		t.Fatalf("GC percent after an apply = %d, want 50", got)
	}
	applyGC(func(string) (string, bool) { return "", true })
	if got := debug.SetGCPercent(100); got != 70 {
		t.Errorf("GOGC set in the environment: apply changed the GC percent to %d, want 70", got)
	}
}
