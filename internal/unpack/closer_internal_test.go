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
	c := &closer{q: make(chan *os.File, 1), done: make(chan struct{})} // run not started yet
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
	c := &closer{q: make(chan *os.File, 4), done: make(chan struct{})}
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
