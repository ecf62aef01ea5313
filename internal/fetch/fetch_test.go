package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/fetch"
)

var payload = bytes.Repeat([]byte("0123456789abcdef"), 64*1024) // 1 MiB

// breakOff answers with the payload's length but sends only its first n
// bytes before dropping the connection.
func breakOff(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(http.StatusOK)
	w.Write(payload[:n])
	w.(http.Flusher).Flush()
	conn, _, _ := w.(http.Hijacker).Hijack()
	conn.Close()
}

// TestResumeWithRange: the first response breaks off half way; the client
// asks for the rest with a Range request and the result is complete.
func TestResumeWithRange(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var sawRange atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			breakOff(w, 300000)
			return
		}
		sawRange.Store(r.Header.Get("Range"))
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(payload))
	}))
	defer srv.Close()
	c := fetch.New("test", fetch.WithRetries(3, time.Millisecond))
	var got bytes.Buffer
	n, err := c.Fetch(context.Background(), srv.URL+"/blob", &got, nil)
	if err != nil || n != int64(len(payload)) || !bytes.Equal(got.Bytes(), payload) {
		t.Fatalf("Fetch(): n=%d err=%v equal=%v", n, err, bytes.Equal(got.Bytes(), payload))
	}
	if r, _ := sawRange.Load().(string); r != "bytes=300000-" {
		t.Errorf("second request Range %q, want bytes=300000-", r)
	}
}

func TestRedactsCredentialsAndQuery(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "http://user:s3cret@", 1) + "/a/b?token=abc#frag"
	_, err := fetch.New("test", fetch.WithRetries(1, 0)).Fetch(context.Background(), u, &bytes.Buffer{}, nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "token") || !strings.Contains(err.Error(), "404") {
		t.Errorf("error %q: want a 404 without credentials or query", err)
	}
	if !fetch.NotFound(err) {
		t.Errorf("NotFound(%v) = false", err)
	}
}

func TestUserAgentAndFileURLs(t *testing.T) {
	t.Parallel()
	var ua atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.UserAgent())
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	c := fetch.New("rootfsctl/1.2.3")
	if _, err := c.GetSmall(context.Background(), srv.URL); err != nil {
		t.Fatal(err)
	}
	if got, _ := ua.Load().(string); got != "rootfsctl/1.2.3" {
		t.Errorf("User-Agent %q", got)
	}
	f := filepath.Join(t.TempDir(), "artifact")
	os.WriteFile(f, []byte("from disk"), 0o644)
	b, err := c.GetSmall(context.Background(), "file://"+f)
	if err != nil || string(b) != "from disk" {
		t.Errorf("file:// fetch: %q %v", b, err)
	}
	if err := c.Reachable(context.Background(), "file://"+f); err != nil {
		t.Errorf("Reachable(file): %v", err)
	}
}

// TestReachableFallsBackToRangedGET: servers that refuse HEAD still pass.
func TestReachableFallsBackToRangedGET(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if r.Header.Get("Range") != "bytes=0-0" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte("x"))
	}))
	defer srv.Close()
	if err := fetch.New("t").Reachable(context.Background(), srv.URL); err != nil {
		t.Errorf("Reachable(): %v", err)
	}
}

func TestParseChecksum(t *testing.T) {
	t.Parallel()
	const a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	const b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	for _, tc := range []struct {
		name, doc, file, want, err string
	}{
		{"bare digest (dl.k8s.io)", a, "kubelet", a, ""},
		{"bare digest with newline", a + "\n", "kubelet", a, ""},
		{"sha256sum line", a + "  crictl.tar.gz\n", "crictl.tar.gz", a, ""},
		{"binary marker", a + " *x.tgz\n", "x.tgz", a, ""},
		{"runc list", a + "  runc.amd64\n" + b + "  runc.arm64\n", "runc.arm64", b, ""},
		{"list without the file", a + "  runc.amd64\n" + b + "  runc.arm64\n", "runc.s390x", "", "no digest for runc.s390x"},
		{"not a digest", "<html>404</html>", "x", "", "not a SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := fetch.ParseChecksum([]byte(tc.doc), tc.file)
			if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("ParseChecksum(): %q, %v; want %q, %q", got, err, tc.want, tc.err)
			}
		})
	}
}

// TestFileURLFifoIsRefused: a file:// URL naming a fifo is refused at
// once instead of blocking for a writer that never comes.
func TestFileURLFifoIsRefused(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "sum")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	c := fetch.New("t")
	done := make(chan error, 1)
	go func() {
		_, err := c.GetSmall(context.Background(), "file://"+fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, fetch.ErrNotRegular) {
			t.Errorf("GetSmall(fifo): %v, want ErrNotRegular", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("GetSmall(fifo) blocked")
	}
}

// TestResumeAtTheWrongOffsetStartsOver: a server that answers a Range
// request with 206 for other bytes (here from byte 0) is not appended;
// the transfer starts over and ends with the right content.
func TestResumeAtTheWrongOffsetStartsOver(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case calls.Add(1) == 1:
			breakOff(w, 300000)
		case r.Header.Get("Range") != "":
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(payload)-1, len(payload)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(payload)
		default:
			w.Write(payload)
		}
	}))
	defer srv.Close()
	c := fetch.New("test", fetch.WithRetries(4, time.Millisecond))
	f, err := os.CreateTemp(t.TempDir(), "dl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := c.Fetch(context.Background(), srv.URL+"/blob", f, nil)
	got, _ := os.ReadFile(f.Name())
	if err != nil || n != int64(len(payload)) || !bytes.Equal(got, payload) {
		t.Fatalf("Fetch(): n=%d err=%v equal=%v (%d bytes)", n, err, bytes.Equal(got, payload), len(got))
	}
}
