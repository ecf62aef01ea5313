package unpack

import (
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/budget"
)

// closer closes the regular files an unpack wrote, on a thread of its own
// at the lowest CPU priority, after starting their writeback.
//
// Starting writeback (sync_file_range) as each file is written is what
// lets the sync before a staging tree is renamed into place find little
// left to do; but the call waits whenever the disk's queue is full, and
// made in the extracting thread it stalled the extraction (the critical
// path of a cold apply) for a third of a second in all. Here it stalls
// only this thread. The extractor hands a file over once it is complete
// (content, owner, mode, xattrs and times set): what is left is the
// writeback hint and the close, neither of which changes what the file
// holds.
//
// The queue is bounded (closerQueue open files); when it is full the
// extractor closes the file itself and leaves its writeback to the sync.
// wait returns once every file handed over is closed, with a close error
// if there was one: a layer is not done before its files are.
type closer struct {
	q    chan *os.File
	done chan struct{}
	err  error // the first close error of the closer's own; read after done
	// failed says the layer failed: what is left in the queue is closed
	// without starting its writeback (its staging tree is removed), so a
	// cancelled apply does not wait on a busy disk for files it drops.
	failed atomic.Bool
}

const closerQueue = 128

func newCloser() *closer {
	c := &closer{q: make(chan *os.File, closerQueue), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *closer) run() {
	defer close(c.done)
	budget.LowerThread()
	for f := range c.q {
		if !c.failed.Load() {
			_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE) // advisory, as above
		}
		if err := f.Close(); err != nil && c.err == nil {
			c.err = fmt.Errorf("close %s: %w", f.Name(), err)
		}
	}
}

// add hands over a complete file; with the queue full it is closed here.
func (c *closer) add(f *os.File) error {
	select {
	case c.q <- f:
		return nil
	default:
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	return nil
}

// wait closes the queue and returns once every file in it is closed. With
// failed, the files still queued are closed without their writeback.
func (c *closer) wait(failed bool) error {
	c.failed.Store(failed)
	close(c.q)
	<-c.done
	return c.err
}
