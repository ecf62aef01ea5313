package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestApplyRuntime: an apply run doubles the runtime's Ps and collects at
// half the heap's growth, the same however often it runs in one process,
// and changes neither when the environment sets it (even to nothing).
func TestApplyRuntime(t *testing.T) {
	procs, gc := runtime.GOMAXPROCS(0), debug.SetGCPercent(100)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs); debug.SetGCPercent(gc) })
	unset := func(string) (string, bool) { return "", false }
	setEmpty := func(string) (string, bool) { return "", true }

	runtime.GOMAXPROCS(defaultProcs)
	for range 3 {
		applyRuntime(unset)
		if got := runtime.GOMAXPROCS(0); got != 2*defaultProcs {
			t.Fatalf("GOMAXPROCS after an apply = %d, want %d (twice the default %d)", got, 2*defaultProcs, defaultProcs)
		}
		if got := debug.SetGCPercent(100); got != 50 {
			t.Fatalf("GC percent after an apply = %d, want 50", got)
		}
	}

	runtime.GOMAXPROCS(3)
	debug.SetGCPercent(70)
	applyRuntime(setEmpty)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS set in the environment: apply changed it to %d, want 3", got)
	}
	if got := debug.SetGCPercent(100); got != 70 {
		t.Errorf("GOGC set in the environment: apply changed the GC percent to %d, want 70", got)
	}
}
