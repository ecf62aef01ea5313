package budget

import (
	"context"
	"runtime"

	"golang.org/x/sys/unix"
)

type backgroundKey struct{}

// Background marks the work under ctx as background work (prefetches):
// every goroutine Run or Each starts for it runs on an OS thread of its
// own at the lowest CPU priority (nice 19). On a machine with fewer cores
// than busy goroutines, foreground work (an unpack inflating a layer on
// one core) then keeps its core, and background work takes what is left;
// on an idle core it runs at full speed.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// isBackground says whether ctx carries work marked with Background.
func isBackground(ctx context.Context) bool {
	v, _ := ctx.Value(backgroundKey{}).(bool)
	return v
}

// settle is the first thing a goroutine started by Run or Each does: for
// background work, it wires the goroutine to its thread and lowers that
// thread's priority. The goroutine never unlocks the thread, so the
// thread ends with it (as runtime.LockOSThread documents) and its
// priority never reaches other goroutines. Raising one's own nice value
// needs no privilege; a failure leaves the priority as it was.
func settle(ctx context.Context) {
	if !isBackground(ctx) {
		return
	}
	LowerThread()
}

// LowerThread wires the calling goroutine to its OS thread for good and
// gives the thread the lowest CPU priority, as settle does for background
// work: for a goroutine whose work may lag (its input is buffered) and
// that ends, taking the thread with it.
func LowerThread() {
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), backgroundNice)
}

// backgroundNice is the nice value of background threads: the lowest
// priority, a weight of 15 against 1024 for nice 0 under Linux's CFS.
// Not SCHED_IDLE: that starves a prefetch outright on a host whose cores
// are busy, and a step waiting for its prefetch with it.
const backgroundNice = 19
