package unpack

import (
	"os"
	"runtime/debug"
	"sync"
)

// While a read-ahead's buffers are live (from its start to its Close), the
// collector runs when the heap has grown by half, not doubled, unless GOGC
// is set (even empty). Most of an unpacking process's heap is these buffers
// (20 MiB with a tee), bytes the collector never scans: collecting sooner
// costs next to no CPU, and at Go's default the heap grew to twice them,
// a cold apply's peak RSS to 62-64 MiB (52-55 MiB with this). Set for the
// whole of an apply instead, it made a warm apply, which unpacks nothing,
// 4 ms slower (13 ms instead of 9): collections while the plan loads.
const bufferedGCPercent = 50

var buffers struct {
	sync.Mutex
	live    int  // read-aheads started and not closed
	restore int  // the percent before the first of them
	gogcSet bool // GOGC is in the environment: leave the collector alone
}

func init() { _, buffers.gogcSet = os.LookupEnv("GOGC") }

// buffersLive counts a read-ahead that has allocated its buffers.
func buffersLive() {
	buffers.Lock()
	defer buffers.Unlock()
	if buffers.live == 0 && !buffers.gogcSet {
		buffers.restore = debug.SetGCPercent(bufferedGCPercent)
	}
	buffers.live++
}

// buffersGone counts a read-ahead closed.
func buffersGone() {
	buffers.Lock()
	defer buffers.Unlock()
	buffers.live--
	if buffers.live == 0 && !buffers.gogcSet {
		debug.SetGCPercent(buffers.restore)
	}
}
