package budget

import (
	"context"
	"os"
	"runtime"
	"sync"

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
// that ends, taking the thread with it. The first call gives the process
// spare Ps (see spareProcs).
func LowerThread() {
	spare.Do(spareProcs)
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), backgroundNice)
}

var spare sync.Once

// spareProcs doubles the runtime's Ps (GOMAXPROCS), unless the environment
// sets them (even empty). The Go scheduler has no priorities: a goroutine
// that has run its 10 ms goes to the back of the run queue, and a P that
// picks a goroutine locked to a lowered thread goes to that thread, where
// it waits as long as the kernel keeps the thread off its core. With as
// many Ps as cores, the unpack's goroutines then waited for a P while a
// core was theirs by nice value: the Go execution tracer counted 5.9 s of
// scheduling latency in a 1.8 s cold apply on 2 cores, 2.9 s with 4 Ps,
// and the apply took 0.06-0.09 s less (interleaved medians; 8 Ps were no
// better than 4). The spare Ps leave the choice to the kernel, which
// knows the nice values. Only a process that lowers a thread needs them:
// a warm apply, which lowers none, starts no more threads than before.
// Setting GOMAXPROCS stops the runtime from following later changes of the
// CPUs this process may use (affinity, a cgroup's quota) for the rest of
// the run: twice the CPUs it had when it started, for a run of seconds.
func spareProcs() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(2 * runtime.GOMAXPROCS(0))
	}
}

// backgroundNice is the nice value of background threads: the lowest
// priority, a weight of 15 against 1024 for nice 0 under Linux's CFS.
// Not SCHED_IDLE: that starves a prefetch outright on a host whose cores
// are busy, and a step waiting for its prefetch with it.
const backgroundNice = 19
