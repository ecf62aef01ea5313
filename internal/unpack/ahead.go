package unpack

import (
	"io"
	"sync"
)

// ahead reads r in a goroutine, up to a few chunks ahead of the consumer,
// so that decompression and extraction run on two cores. Memory is bounded
// by chunks * chunkSize.
func ahead(r io.Reader) io.ReadCloser { return aheadOf(r, nil) }

// aheadClosing is ahead for a reader that must be closed, such as a
// decompressor: the goroutine reading it closes it once it stops, so it is
// never closed in the middle of a Read.
func aheadClosing(r io.ReadCloser) io.ReadCloser { return aheadOf(r, r) }

func aheadOf(r io.Reader, c io.Closer) io.ReadCloser {
	const chunks, chunkSize = 4, 1 << 20
	a := &aheadReader{full: make(chan []byte, chunks), free: make(chan []byte, chunks), done: make(chan struct{})}
	for i := 0; i < chunks; i++ {
		a.free <- make([]byte, chunkSize)
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
	full, free chan []byte
	done       chan struct{}
	closeOnce  sync.Once
	err        error // set before full is closed
	cur        []byte
	curBuf     []byte
}

func (a *aheadReader) fill(r io.Reader) {
	defer close(a.full)
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.done:
			return
		}
		n, err := readChunk(r, buf[:cap(buf)])
		if n > 0 {
			select {
			case a.full <- buf[:n]:
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
	for len(a.cur) == 0 {
		if a.curBuf != nil {
			a.free <- a.curBuf[:cap(a.curBuf)]
			a.curBuf = nil
		}
		buf, ok := <-a.full
		if !ok {
			return 0, a.err
		}
		a.cur, a.curBuf = buf, buf
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

func (a *aheadReader) Close() error {
	a.closeOnce.Do(func() { close(a.done) })
	return nil
}
