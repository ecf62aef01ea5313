package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
)

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
