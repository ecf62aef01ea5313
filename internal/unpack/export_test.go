package unpack

import "io"

// Inflate returns the tar stream of a layer blob, inflated on a goroutine
// of its own (gzip or zstd, detected from the stream; a plain tar is
// handed on as it is), for tests of the read-ahead. Closing it stops the
// inflating.
func Inflate(blob io.Reader) (io.ReadCloser, error) {
	return decompress(blob, nil)
}
