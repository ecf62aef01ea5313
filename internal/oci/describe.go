package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

// transient says whether another attempt at a registry request may help:
// the answers the registry marks temporary (408, 429, 5xx, or error codes
// such as UNAVAILABLE) and network failures; never a platform the image
// lacks, a missing file or an answer such as 404.
func transient(err error) bool {
	var te *transport.Error
	var pe *platformError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &pe), errors.Is(err, fs.ErrNotExist):
		return false
	case errors.As(err, &te):
		return te.Temporary()
	}
	return true // network errors, resets, idle timeouts, truncated bodies
}

// Describe says why an image did not resolve, for a preflight message, by
// the error's type: the registry's answer (status and error codes, never
// its free text, which may name the repository), a platform the image
// lacks, or a network failure. budget is the check's time, for a deadline
// that passed.
func Describe(err error, budget time.Duration) string {
	var te *transport.Error
	var pe *platformError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fetch.Describe(err, budget)
	case errors.As(err, &pe):
		return pe.Error()
	case errors.As(err, &te):
		msg := fmt.Sprintf("registry answered %d %s", te.StatusCode, http.StatusText(te.StatusCode))
		var codes []string
		for _, d := range te.Errors {
			codes = append(codes, string(d.Code))
		}
		if len(codes) > 0 {
			msg += " (" + strings.Join(codes, ", ") + ")"
		}
		return msg
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist"
	}
	return fetch.Describe(err, budget)
}
