// Package fetch downloads artifacts over HTTP(S) or from file:// URLs, with
// the timeouts, retries, resume and redaction an unattended provisioner
// needs. It knows nothing about machine directories: callers hand it a
// writer and decide what to do with the bytes.
//
// It must never print a URL's credentials or query string: every error and
// log line uses Redact.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Client fetches URLs. The zero value is not usable; use New.
type Client struct {
	http        *http.Client
	userAgent   string
	attempts    int
	delay       time.Duration
	maxDelay    time.Duration
	idleTimeout time.Duration
	sleep       func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client (tests use httptest's).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many attempts a transfer gets and the first wait
// between them (doubled each time, with jitter, capped at 30 s).
func WithRetries(attempts int, delay time.Duration) Option {
	return func(c *Client) { c.attempts, c.delay = max(attempts, 1), delay }
}

// WithIdleTimeout sets how long a body may deliver no bytes before the
// transfer is abandoned (and retried).
func WithIdleTimeout(d time.Duration) Option { return func(c *Client) { c.idleTimeout = d } }

// New returns a client with production timeouts: 30 s to connect and for
// the TLS handshake, 60 s for response headers, 60 s of silence while
// reading a body, and no cap on a whole transfer (artifacts are large and
// links slow). Proxies come from HTTP_PROXY, HTTPS_PROXY and NO_PROXY.
func New(userAgent string, opts ...Option) *Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
		ForceAttemptHTTP2:     true,
	}
	c := &Client{
		http:        &http.Client{Transport: tr},
		userAgent:   userAgent,
		attempts:    4,
		delay:       time.Second,
		maxDelay:    30 * time.Second,
		idleTimeout: 60 * time.Second,
		sleep:       sleepCtx,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Transport is the client's round tripper, for libraries (the registry
// client) that should share its proxy and timeout settings.
func (c *Client) Transport() http.RoundTripper {
	if c.http.Transport != nil {
		return c.http.Transport
	}
	return http.DefaultTransport
}

// IdleTimeout is how long a transfer may deliver no bytes.
func (c *Client) IdleTimeout() time.Duration { return c.idleTimeout }

// UserAgent is the User-Agent the client sends.
func (c *Client) UserAgent() string { return c.userAgent }

// Redact returns u without credentials, query or fragment, for messages.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	p.User, p.RawQuery, p.Fragment, p.ForceQuery = nil, "", "", false
	return p.String()
}

// ErrNotRegular is returned for a file:// URL that names something other
// than a regular file.
var ErrNotRegular = errors.New("not a regular file")

// errIdle cancels a request whose body stalled.
var errIdle = errors.New("idle timeout")

// StatusError is an HTTP answer other than the one asked for.
type StatusError struct {
	URL  string // redacted
	Code int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.URL, e.Code, http.StatusText(e.Code))
}

// NotFound reports whether err is a 404 (or a missing file:// path).
func NotFound(err error) bool {
	var se *StatusError
	return (errors.As(err, &se) && se.Code == http.StatusNotFound) || errors.Is(err, os.ErrNotExist)
}

// transient says whether a retry may help.
func transient(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusTooManyRequests || se.Code == http.StatusRequestTimeout || se.Code >= 500
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, context.Canceled) {
		return false
	}
	return true // network errors, resets, idle timeouts, truncated bodies
}

// Fetch writes the body at rawURL to w. A transfer that breaks off is
// resumed with a Range request where the server allows it, and restarted
// otherwise (w must then be an io.WriteSeeker with Truncate, like *os.File,
// or the error is returned). It returns the number of bytes written.
func (c *Client) Fetch(ctx context.Context, rawURL string, w io.Writer, onProgress func(total int64, n int)) (int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, fmt.Errorf("parse URL %s: %w", Redact(rawURL), err)
	}
	if u.Scheme == "file" {
		return fetchFile(ctx, u, w, onProgress)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return 0, fmt.Errorf("fetch %s: unsupported scheme %q (http, https or file)", Redact(rawURL), u.Scheme)
	}
	log := zerolog.Ctx(ctx)
	var written int64
	for attempt := 1; ; attempt++ {
		var err error
		written, err = c.fetchOnce(ctx, rawURL, written, w, onProgress)
		if err == nil {
			return written, nil
		}
		if ctx.Err() != nil || !transient(err) || attempt >= c.attempts {
			return written, err
		}
		wait := c.backoff(attempt)
		log.Warn().Str("url", Redact(rawURL)).Err(err).Int("attempt", attempt).Dur("retryInMs", wait).Int64("have", written).Msg("download interrupted, retrying")
		if err := c.sleep(ctx, wait); err != nil {
			return written, err
		}
	}
}

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
	var n int64
	buf := make([]byte, 256*1024)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			idle.Reset(c.idleTimeout)
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("write: %w", err)
			}
			n += int64(k)
			if onProgress != nil {
				onProgress(total, k)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if errors.Is(context.Cause(ctx), errIdle) {
				rerr = fmt.Errorf("no data for %s", c.idleTimeout)
			}
			return n, fmt.Errorf("GET %s: body: %w", Redact(rawURL), rerr)
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("GET %s: body ended after %d of %d bytes", Redact(rawURL), n, resp.ContentLength)
	}
	return n, nil
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
	var n int64
	buf := make([]byte, 256*1024)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := f.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("write: %w", err)
			}
			n += int64(k)
			if onProgress != nil {
				onProgress(total, k)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("read %s: %w", u.Path, rerr)
		}
	}
}

// GetSmall fetches a small document (a checksum file), at most 1 MiB.
func (c *Client) GetSmall(ctx context.Context, rawURL string) ([]byte, error) {
	var b limitedBuffer
	if _, err := c.Fetch(ctx, rawURL, &b, nil); err != nil {
		return nil, err
	}
	return b.buf, nil
}

type limitedBuffer struct{ buf []byte }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if len(b.buf)+len(p) > 1<<20 {
		return 0, errors.New("document larger than 1 MiB")
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *limitedBuffer) Truncate(n int64) error         { b.buf = b.buf[:n]; return nil }
func (b *limitedBuffer) Seek(int64, int) (int64, error) { return 0, nil }

// Reachable checks that rawURL would serve content, without downloading it:
// HEAD, falling back to a one-byte ranged GET (some servers refuse HEAD);
// 200 and 206 pass. It does not retry: preflight wants a quick answer.
func (c *Client) Reachable(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("parse URL: %w", err)
	}
	if u.Scheme == "file" {
		fi, err := os.Stat(u.Path)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %w", u.Path, ErrNotRegular)
		}
		return nil
	}
	try := func(method string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("User-Agent", c.userAgent)
		if method == http.MethodGet {
			req.Header.Set("Range", "bytes=0-0")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, redactErr(rawURL, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024)) // let the connection be reused
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := try(http.MethodHead)
	if err == nil && (code == http.StatusOK || code == http.StatusPartialContent) {
		return nil
	}
	code, err = try(http.MethodGet)
	if err != nil {
		return err
	}
	if code == http.StatusOK || code == http.StatusPartialContent {
		return nil
	}
	return &StatusError{URL: Redact(rawURL), Code: code}
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.delay
	for i := 1; i < attempt && d < c.maxDelay; i++ {
		d *= 2
	}
	d = min(d, c.maxDelay)
	return d/2 + time.Duration(rand.Float64()*float64(d/2))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ParseChecksum finds the hex SHA-256 for file in a published checksum
// document: a bare digest ("<hex>"), "<hex>  <name>" or "<hex> *<name>"
// lines (sha256sum output, possibly listing several files).
func ParseChecksum(doc []byte, file string) (string, error) {
	var only string
	lines := 0
	for _, line := range strings.Split(string(doc), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		lines++
		sum := strings.ToLower(fields[0])
		if !IsSHA256(sum) {
			return "", fmt.Errorf("checksum document: %q is not a SHA-256 digest", truncate(fields[0], 80))
		}
		if len(fields) == 1 {
			only = sum
			continue
		}
		name := strings.TrimPrefix(fields[1], "*")
		if name == file || strings.HasSuffix(name, "/"+file) {
			return sum, nil
		}
		if lines == 1 {
			only = sum
		}
	}
	if lines == 1 && only != "" {
		return only, nil
	}
	return "", fmt.Errorf("checksum document lists no digest for %s", file)
}

// IsSHA256 reports whether s is 64 lowercase hex digits.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
