package unpack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openTemp(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func isClosed(f *os.File) bool { return f.Fd() == ^uintptr(0) }

// A file that finds the queue full is closed at once by the extractor; the
// queued ones are closed by the closer's thread, all of them by wait.
func TestCloserClosesWhatItCannotQueue(t *testing.T) {
	c := makeCloser(1, 1) // run not started yet
	queued, overflow := openTemp(t, "queued"), openTemp(t, "overflow")
	if err := c.add(queued); err != nil {
		t.Fatal(err)
	}
	if err := c.add(overflow); err != nil {
		t.Fatal(err)
	}
	if !isClosed(overflow) || isClosed(queued) {
		t.Fatalf("with a full queue: overflow closed %v (want true), queued closed %v (want false)", isClosed(overflow), isClosed(queued))
	}
	go c.run()
	if err := c.wait(false); err != nil {
		t.Fatal(err)
	}
	if !isClosed(queued) {
		t.Fatal("wait returned with a queued file still open")
	}
}

// A close that fails is the layer's error, named by its file.
func TestCloserReportsTheFirstCloseError(t *testing.T) {
	c := newCloser()
	bad := openTemp(t, "etc-passwd")
	bad.Close() // closing it again fails
	if err := c.add(bad); err != nil {
		t.Fatal(err)
	}
	if err := c.add(openTemp(t, "fine")); err != nil {
		t.Fatal(err)
	}
	err := c.wait(false)
	if err == nil || !strings.Contains(err.Error(), "etc-passwd") {
		t.Fatalf("wait: %v, want the failed close of etc-passwd", err)
	}
}

// A failed layer's queued files are still all closed.
func TestCloserClosesEverythingAfterAFailure(t *testing.T) {
	c := makeCloser(4, 1)
	var fs []*os.File
	for _, n := range []string{"a", "b", "c"} {
		f := openTemp(t, n)
		fs = append(fs, f)
		if err := c.add(f); err != nil {
			t.Fatal(err)
		}
	}
	go c.run()
	if err := c.wait(true); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if !isClosed(f) {
			t.Errorf("%s still open after wait", f.Name())
		}
	}
}

// Files go to the closer's thread in full batches; a batch that finds the
// queue full is closed by the extractor, and wait hands over the last,
// partial one: every file is closed once wait returns.
func TestCloserHandsOverFullBatches(t *testing.T) {
	c := makeCloser(2, 3) // run not started yet
	var all []*os.File
	add := func(n int) []*os.File {
		var added []*os.File
		for range n {
			f := openTemp(t, "f")
			if err := c.add(f); err != nil {
				t.Fatal(err)
			}
			added = append(added, f)
		}
		all = append(all, added...)
		return added
	}
	add(2)
	if len(c.q) != 0 {
		t.Fatalf("2 files of a batch of 3: %d batches queued, want none yet", len(c.q))
	}
	add(4) // completes the first batch and fills a second
	if len(c.q) != 2 {
		t.Fatalf("6 files in batches of 3: %d batches queued, want 2", len(c.q))
	}
	overflow := add(3) // a third batch, which finds the queue full
	for i, f := range all {
		if closed, want := isClosed(f), i >= 6; closed != want {
			t.Fatalf("file %d closed %v, want %v (the first six are queued, the third batch is closed at once)", i, closed, want)
		}
	}
	if len(overflow) != 3 || len(c.q) != 2 {
		t.Fatalf("after the overflow: %d batches queued, want 2", len(c.q))
	}
	add(1) // a partial batch, handed over by wait
	go c.run()
	if err := c.wait(false); err != nil {
		t.Fatal(err)
	}
	for i, f := range all {
		if !isClosed(f) {
			t.Errorf("file %d still open after wait", i)
		}
	}
}

// However far the closer's thread falls behind, the files open on its
// account stay within closerOpen: here it has not started, so the batch it
// would be closing is not counted, and the rest must leave room for it.
func TestCloserKeepsItsOpenFilesBounded(t *testing.T) {
	c := makeCloser(closerBatches, closerBatch) // as newCloser, its thread not started
	var all []*os.File
	for range 1000 {
		f := openTemp(t, "f")
		all = append(all, f)
		if err := c.add(f); err != nil {
			t.Fatal(err)
		}
	}
	open := 0
	for _, f := range all {
		if !isClosed(f) {
			open++
		}
	}
	if open > closerOpen-closerBatch {
		t.Fatalf("%d files open with the closer stalled, want at most %d (closerOpen %d less the batch it would be closing)", open, closerOpen-closerBatch, closerOpen)
	}
	go c.run()
	if err := c.wait(false); err != nil {
		t.Fatal(err)
	}
}

// A batch that finds the queue full is closed by the extractor, and a close
// that fails there is the add's error, named by its file; the batch's other
// files are closed all the same.
func TestCloserReportsAFailedCloseOfAnOverflowingBatch(t *testing.T) {
	c := makeCloser(1, 2) // its thread not started
	for _, n := range []string{"a", "b"} {
		if err := c.add(openTemp(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	bad, fine := openTemp(t, "etc-shadow"), openTemp(t, "fine")
	bad.Close() // closing it again fails
	if err := c.add(bad); err != nil {
		t.Fatal(err)
	}
	err := c.add(fine)
	if err == nil || !strings.Contains(err.Error(), "etc-shadow") {
		t.Fatalf("add of an overflowing batch: %v, want the failed close of etc-shadow", err)
	}
	if !isClosed(fine) {
		t.Error("the overflowing batch's other file is still open")
	}
	go c.run()
	if err := c.wait(false); err != nil {
		t.Fatal(err)
	}
}
