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
// At most closerOpen files are open at once on the closer's account (a
// batch being filled, the queued batches, the batch being closed); when
// the queue is full the extractor closes a batch itself and leaves its
// writeback to the sync.
// wait returns once every file handed over is closed, with a close error
// if there was one: a layer is not done before its files are.
type closer struct {
	q     chan []*os.File
	batch []*os.File // complete files not handed over yet (the extractor's)
	size  int        // files per handover
	done  chan struct{}
	err   error // the first close error of the closer's own; read after done
	// failed says the layer failed: what is left in the queue is closed
	// without starting its writeback (its staging tree is removed), so a
	// cancelled apply does not wait on a busy disk for files it drops.
	failed atomic.Bool
}

// Files are handed over closerBatch at a time. Each handover wakes the
// closer's thread, and the Go scheduler then gives that thread a P of the
// extractor's: handed over one by one (about 5,000 files in a debootstrap
// rootfs), the extractor spent a quarter of a second waiting for a P
// again. The queue holds what closerOpen leaves beside the batch being
// filled and the one being closed.
const (
	closerBatch   = 32
	closerOpen    = 128
	closerBatches = closerOpen/closerBatch - 2 // queued
)

func newCloser() *closer {
	c := makeCloser(closerBatches, closerBatch)
	go c.run()
	return c
}

// makeCloser is a closer whose thread is not started yet: queue batches
// of size files.
func makeCloser(queue, size int) *closer {
	return &closer{q: make(chan []*os.File, queue), size: size, done: make(chan struct{})}
}

// closeFile closes f, naming it in the error.
func closeFile(f *os.File) error {
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	return nil
}

func (c *closer) run() {
	defer close(c.done)
	budget.LowerThread()
	for b := range c.q {
		for _, f := range b {
			if !c.failed.Load() {
				_ = unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE) // advisory, as above
			}
			if err := closeFile(f); err != nil && c.err == nil {
				c.err = err
			}
		}
	}
}

// add takes a complete file, handing it over with a full batch.
func (c *closer) add(f *os.File) error {
	c.batch = append(c.batch, f)
	if len(c.batch) < c.size {
		return nil
	}
	return c.handOver()
}

// handOver queues the batch; with the queue full it closes it here.
func (c *closer) handOver() error {
	b := c.batch
	c.batch = nil
	if len(b) == 0 {
		return nil
	}
	select {
	case c.q <- b:
		return nil
	default:
	}
	var first error
	for _, f := range b {
		if err := closeFile(f); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// wait hands over the last batch, closes the queue and returns once every
// file is closed. With failed, the files still queued are closed without
// their writeback.
func (c *closer) wait(failed bool) error {
	c.failed.Store(failed)
	herr := c.handOver()
	close(c.q)
	<-c.done
	if c.err != nil {
		return c.err
	}
	return herr
}
