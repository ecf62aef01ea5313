// Package fetch downloads artifacts over HTTP(S) or from file:// URLs, with
// the timeouts, retries, resume and redaction an unattended provisioner
// needs, and says in words what went wrong (Describe). It knows nothing
// about machine directories: callers hand it a writer and decide what to do
// with the bytes.
//
// It must never print a URL's credentials or query string: every error and
// log line uses Redact. It keeps no retry loop of its own: a transfer is
// attempted under internal/retry, with the policy the context carries (a
// plan's step retry policy) or the client's, so that its attempts and a
// step's never multiply.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// Client fetches URLs. The zero value is not usable; use New.
type Client struct {
	http        *http.Client
	userAgent   string
	policy      retry.Policy // unless the context carries one
	idleTimeout time.Duration
	sleep       func(ctx context.Context, d time.Duration) error // nil: retry.Sleep
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client (tests use httptest's).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many attempts a transfer gets and the first wait
// between them (doubled each time, with jitter, capped at 30 s), where
// the context carries no retry policy (retry.WithPolicy).
func WithRetries(attempts int, delay time.Duration) Option {
	return func(c *Client) { c.policy.Attempts, c.policy.Delay = max(attempts, 1), delay }
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
		policy:      defaultPolicy,
		idleTimeout: 60 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// defaultPolicy is how a transfer is attempted when neither the context nor
// WithRetries says otherwise: four attempts, one second before the second,
// doubled per failure up to 30 s.
var defaultPolicy = retry.Policy{Attempts: 4, Delay: time.Second, MaxDelay: 30 * time.Second}

// Transport is the client's round tripper, for libraries (the registry
// client) that should share its proxy and timeout settings.
func (c *Client) Transport() http.RoundTripper {
	if c.http.Transport != nil {
		return c.http.Transport
	}
	return http.DefaultTransport
}

// Policy is how the client attempts a transfer where the context carries
// no policy of its own, for other transfers (the registry's) to share.
func (c *Client) Policy() retry.Policy { return c.policy }

// IdleTimeout is how long a transfer may deliver no bytes.
func (c *Client) IdleTimeout() time.Duration { return c.idleTimeout }

// UserAgent is the User-Agent the client sends.
func (c *Client) UserAgent() string { return c.userAgent }

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
	var written int64
	hooks := retry.Hooks{Retryable: transient, Sleep: c.sleep, OnRetry: func(attempt int, err error, wait time.Duration) {
		zerolog.Ctx(ctx).Warn().Str("url", Redact(rawURL)).Err(err).Int("attempt", attempt).Dur("retryInMs", wait).Int64("have", written).Msg("download interrupted, retrying")
	}}
	_, err = retry.Do(ctx, retry.PolicyFrom(ctx, c.policy), hooks, func(ctx context.Context, _ int) error {
		var err error
		written, err = c.fetchOnce(ctx, rawURL, written, w, onProgress)
		return err
	})
	if err != nil && ctx.Err() == nil && !transient(err) && !retry.IsExhausted(err) {
		// A 404 or a refusal: no attempt of the step would do better.
		err = retry.Permanent(err)
	}
	return written, err
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
