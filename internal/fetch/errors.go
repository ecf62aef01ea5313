package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

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

// Describe says in words what went wrong with a transfer or a probe, for a
// preflight message: without the URL, credentials or file contents the
// error may carry. It decides by the error's type, never its text. budget
// is the time the probe had, for a deadline that passed.
func Describe(err error, budget time.Duration) string {
	var (
		se      *StatusError
		dns     *net.DNSError
		op      *net.OpError
		errno   syscall.Errno
		unknown x509.UnknownAuthorityError
		badHost x509.HostnameError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", budget)
	case errors.As(err, &se):
		return fmt.Sprintf("server answered %d %s", se.Code, http.StatusText(se.Code))
	case errors.As(err, &dns):
		return "host name does not resolve"
	case errors.As(err, &unknown):
		return "TLS certificate signed by an unknown authority"
	case errors.As(err, &badHost):
		return "TLS certificate is not valid for this host"
	case errors.As(err, &invalid):
		return "TLS certificate is not valid (expired or not yet valid)"
	case errors.As(err, &record):
		return "the server does not speak TLS"
	case errors.Is(err, fs.ErrNotExist):
		return "file does not exist"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, ErrNotRegular):
		return "not a regular file"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &op):
		return "network error (" + op.Op + ")"
	}
	return "network or protocol error"
}

// TimeLeft is the time ctx has until its deadline, rounded for a message
// (Describe's budget), or def when it has none. Take it before the probe:
// once the deadline has passed, nothing is left.
func TimeLeft(ctx context.Context, def time.Duration) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return def
	}
	return time.Until(dl).Round(100 * time.Millisecond)
}
