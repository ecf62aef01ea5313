package unpack

import (
	"bytes"
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's setting.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// The collector runs sooner exactly while read-aheads are open: from the
// first one started to the last one closed, then as it was; and not at all
// differently when GOGC is set.
func TestCollectorRunsSoonerWhileReadAheadsAreOpen(t *testing.T) {
	before := debug.SetGCPercent(120)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	buffers.Lock()
	live := buffers.live
	buffers.Unlock()
	if live != 0 {
		t.Fatalf("%d read-aheads still open when the test starts: an earlier test did not close one", live)
	}

	a := ahead(bytes.NewReader(make([]byte, 3<<20)))
	if got := gcPercent(); got != bufferedGCPercent {
		t.Fatalf("with a read-ahead open: GC percent %d, want %d", got, bufferedGCPercent)
	}
	b := aheadClosing(nopCloser{bytes.NewReader(nil)}, &bytes.Buffer{})
	a.Close()
	a.Close() // twice: counted once
	if got := gcPercent(); got != bufferedGCPercent {
		t.Fatalf("one of two read-aheads closed: GC percent %d, want %d", got, bufferedGCPercent)
	}
	b.Close()
	b.wait()
	if got := gcPercent(); got != 120 {
		t.Fatalf("every read-ahead closed: GC percent %d, want it back at 120", got)
	}

	buffers.gogcSet = true
	t.Cleanup(func() { buffers.gogcSet = false })
	c := ahead(bytes.NewReader(nil))
	if got := gcPercent(); got != 120 {
		t.Errorf("GOGC set: a read-ahead changed the GC percent to %d", got)
	}
	c.Close()
	if got := gcPercent(); got != 120 {
		t.Errorf("GOGC set: closing a read-ahead changed the GC percent to %d", got)
	}
}
