package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fetchOnce performs one request, starting at offset when it is not zero,
// and returns how many bytes w now holds.
func (c *Client) fetchOnce(ctx context.Context, rawURL string, offset int64, w io.Writer, onProgress func(int64, int)) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", Redact(rawURL), err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return offset, redactErr(rawURL, err)
	}
	defer resp.Body.Close()
	total := resp.ContentLength
	switch {
	case offset > 0 && resp.StatusCode == http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
			// Not the bytes asked for: appending them would corrupt the
			// file. Start over, without Range, on the next attempt.
			if err := restart(w); err != nil {
				return offset, fmt.Errorf("GET %s: server answered another range and %w", Redact(rawURL), err)
			}
			return 0, fmt.Errorf("GET %s: server answered a range starting elsewhere than byte %d (Content-Range %q); starting over", Redact(rawURL), offset, truncate(resp.Header.Get("Content-Range"), 80))
		}
		if total >= 0 {
			total += offset
		}
	case offset > 0 && resp.StatusCode == http.StatusOK:
		// The server ignored the Range header: start over.
		if err := restart(w); err != nil {
			return offset, fmt.Errorf("GET %s: server cannot resume and %w", Redact(rawURL), err)
		}
		return c.copyBody(ctx, cancel, rawURL, resp, w, total, onProgress)
	case resp.StatusCode != http.StatusOK:
		return offset, &StatusError{URL: Redact(rawURL), Code: resp.StatusCode}
	}
	n, err := c.copyBody(ctx, cancel, rawURL, resp, w, total, onProgress)
	return offset + n, err
}

// copyBody copies with an idle timer that cancels the request when the
// body stalls, and returns the bytes copied.
func (c *Client) copyBody(ctx context.Context, cancel context.CancelCauseFunc, rawURL string, resp *http.Response, w io.Writer, total int64, onProgress func(int64, int)) (int64, error) {
	idle := time.AfterFunc(c.idleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	n, rerr, werr := copyChunks(resp.Body, w, func(k int) {
		idle.Reset(c.idleTimeout)
		if onProgress != nil {
			onProgress(total, k)
		}
	})
	switch {
	case werr != nil:
		return n, werr
	case rerr != nil:
		if errors.Is(context.Cause(ctx), errIdle) {
			rerr = fmt.Errorf("no data for %s", c.idleTimeout)
		}
		return n, fmt.Errorf("GET %s: body: %w", Redact(rawURL), rerr)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return n, fmt.Errorf("GET %s: body ended after %d of %d bytes", Redact(rawURL), n, resp.ContentLength)
	}
	return n, nil
}

// copyChunks copies src to w, telling onData the size of each chunk
// written, until src ends (io.EOF is no error). It returns the bytes
// copied and what stopped it: a read error as src gave it, or a write
// error.
func copyChunks(src io.Reader, w io.Writer, onData func(n int)) (n int64, readErr, writeErr error) {
	buf := make([]byte, 256*1024)
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, nil, fmt.Errorf("write: %w", err)
			}
			n += int64(k)
			onData(k)
		}
		if rerr == io.EOF {
			return n, nil, nil
		}
		if rerr != nil {
			return n, rerr, nil
		}
	}
}

// rangeStart reads the first byte position of a Content-Range header
// ("bytes 100-199/200").
func rangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}

func restart(w io.Writer) error {
	ws, ok := w.(interface {
		io.Seeker
		Truncate(int64) error
	})
	if !ok {
		return errors.New("the destination cannot be rewound")
	}
	if err := ws.Truncate(0); err != nil {
		return err
	}
	_, err := ws.Seek(0, io.SeekStart)
	return err
}

func redactErr(rawURL string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, Redact(rawURL), ue.Err)
	}
	return fmt.Errorf("GET %s: %w", Redact(rawURL), err)
}

func fetchFile(ctx context.Context, u *url.URL, w io.Writer, onProgress func(int64, int)) (int64, error) {
	// O_NONBLOCK: a fifo must not block the open; it is refused below.
	f, err := os.OpenFile(u.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", u.Path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", u.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("open %s: %w", u.Path, ErrNotRegular)
	}
	total := fi.Size()
	n, rerr, werr := copyChunks(&ctxReader{ctx: ctx, r: f}, w, func(k int) {
		if onProgress != nil {
			onProgress(total, k)
		}
	})
	switch {
	case werr != nil:
		return n, werr
	case rerr != nil && rerr == ctx.Err():
		return n, rerr
	case rerr != nil:
		return n, fmt.Errorf("read %s: %w", u.Path, rerr)
	}
	return n, nil
}

// CancelReader reads r until ctx ends, so a long copy stops when its run
// is cancelled.
func CancelReader(ctx context.Context, r io.Reader) io.Reader { return &ctxReader{ctx: ctx, r: r} }

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
