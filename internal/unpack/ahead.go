package unpack

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/rootfsctl/rootfsctl/internal/budget"
)

// ahead reads r in a goroutine, up to a few chunks ahead of the consumer,
// so that decompression and extraction run on two cores. Memory is bounded
// by chunks * chunkSize (teeChunks times that with a tee).
func ahead(r io.Reader) *aheadReader { return aheadOf(r, nil, nil) }

// aheadClosing is ahead for a reader that must be closed, such as a
// decompressor: the goroutine reading it closes it once it stops, so it is
// never closed in the middle of a Read.
//
// With a tee, every chunk read is also written to tee, on a goroutine of
// its own (so a slow tee costs the reader no time until the chunks run
// out). Writing stops at the tee's first error; wait says when the tee has
// had everything that was read.
func aheadClosing(r io.ReadCloser, tee io.Writer) *aheadReader { return aheadOf(r, r, tee) }

const aheadChunks, aheadChunkSize = 4, 1 << 20

// teeChunks is how many times aheadChunks a read-ahead with a tee holds:
// room for the tee (the layer's tar stream going to the cache, at the
// lowest priority) to fall behind while both cores are busy. With twice
// the chunks, the inflater waited for a free chunk 60-130 ms of a cold
// apply's 1.1 s layer, and the apply took 0.03-0.04 s longer; four times
// is 8 MiB more of the heap (a cold apply peaks at 52-53 MiB of RSS, with
// the collector setting apply uses).
const teeChunks = 4

// errAheadClosed is what a read-ahead that was closed returns: never
// (0, nil), which its readers would retry for ever.
var errAheadClosed = errors.New("read-ahead closed")

// chunk is one buffer, held by the consumer and the tee until both let go.
type chunk struct {
	b    []byte
	n    int
	refs atomic.Int32
}

func aheadOf(r io.Reader, c io.Closer, tee io.Writer) *aheadReader {
	chunks := aheadChunks
	if tee != nil {
		chunks *= teeChunks
	}
	a := &aheadReader{full: make(chan *chunk, chunks), free: make(chan *chunk, chunks), done: make(chan struct{}), teeDone: make(chan struct{})}
	buffersLive()
	for i := 0; i < chunks; i++ {
		a.free <- &chunk{b: make([]byte, aheadChunkSize)}
	}
	if tee == nil {
		close(a.teeDone)
	} else {
		a.tee = make(chan *chunk, chunks)
		go a.writeTee(tee)
	}
	go func() {
		if c != nil {
			defer c.Close()
		}
		a.fill(r)
	}()
	return a
}

type aheadReader struct {
	full, free chan *chunk
	tee        chan *chunk // nil without a tee
	done       chan struct{}
	teeDone    chan struct{}
	closeOnce  sync.Once
	err        error // set before full is closed
	cur        *chunk
	off        int
}

// release hands a chunk back once neither the consumer nor the tee holds
// it. free has room for every chunk, so this never blocks.
func (a *aheadReader) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		a.free <- c
	}
}

func (a *aheadReader) fill(r io.Reader) {
	defer func() {
		if a.tee != nil {
			close(a.tee)
		}
	}()
	defer close(a.full)
	for {
		var c *chunk
		select {
		case c = <-a.free:
		case <-a.done:
			return
		}
		n, err := readChunk(r, c.b)
		if n > 0 {
			c.n = n
			if a.tee != nil {
				c.refs.Store(2)
				a.tee <- c // room for every chunk: never blocks
			} else {
				c.refs.Store(1)
			}
			select {
			case a.full <- c:
			case <-a.done:
				return
			}
		}
		if err != nil {
			a.err = err // io.EOF only where r ended properly
			return
		}
	}
}

// writeTee writes every chunk to w until w fails, and releases each.
//
// It runs at the lowest CPU priority: on a machine with as many busy
// goroutines as cores (inflating and extracting a layer on two), it takes
// the time the others leave (the extractor waits for the inflater about
// half of its time), with room to fall behind, instead of taking a core
// from the inflater. Measured on the single-layer benchmark: at normal
// priority the spool made the workspace step 0.05-0.1 s slower; at the
// lowest, no slower.
func (a *aheadReader) writeTee(w io.Writer) {
	defer close(a.teeDone)
	budget.LowerThread()
	var failed bool
	for c := range a.tee {
		if !failed {
			_, err := w.Write(c.b[:c.n])
			failed = err != nil
		}
		a.release(c)
	}
}

// wait returns once the tee has been given every chunk read (at once
// without a tee). Call it after the last Read, or after Close.
func (a *aheadReader) wait() { <-a.teeDone }

// readChunk fills buf as far as r goes. Unlike io.ReadFull it hands on
// r's own errors unchanged: io.ReadFull reports a short last chunk as
// io.ErrUnexpectedEOF, the very error a decompressor returns for a stream
// cut short, so the two could not be told apart and a truncated layer
// read as one that ended.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for a.cur == nil || a.off == a.cur.n {
		if a.cur != nil {
			a.release(a.cur)
			a.cur = nil
		}
		c, ok := <-a.full
		if !ok {
			if a.err == nil { // stopped by Close, not by r
				return 0, errAheadClosed
			}
			return 0, a.err
		}
		a.cur, a.off = c, 0
	}
	n := copy(p, a.cur.b[a.off:a.cur.n])
	a.off += n
	return n, nil
}

func (a *aheadReader) Close() error {
	a.closeOnce.Do(func() {
		close(a.done)
		buffersGone()
	})
	return nil
}
