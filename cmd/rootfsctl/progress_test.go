package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestBarProgressShowsBytesAndTotal renders the terminal bar into a buffer:
// it names the transfer and shows bytes out of the known total.
func TestBarProgressShowsBytesAndTotal(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := newBarProgress(&out)
	a := p.Track("kubelet 1.33.1 linux/amd64", 4<<20)
	b := p.Track("layer 1/1", 4<<20)
	for i := 0; i < 4; i++ {
		a.Add(1 << 20)
		b.Add(512 << 10)
		time.Sleep(120 * time.Millisecond) // past the bar's redraw throttle
	}
	a.Done()
	b.Done()
	got := out.String()
	for _, want := range []string{"layer 1/1", "MB", "/8.4 MB"} {
		if !strings.Contains(got, want) {
			t.Errorf("bar output lacks %q:\n%q", want, got)
		}
	}
}

// TestLogProgressReportsPeriodically: without a terminal, a transfer logs
// its bytes, total and rate at most once per interval.
func TestLogProgressReportsPeriodically(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := logProgress{log: zerolog.New(&out), interval: 50 * time.Millisecond}
	tr := p.Track("containerd 2.0.4 linux/amd64", 3000)
	tr.Add(1000)
	time.Sleep(60 * time.Millisecond)
	tr.Add(1000)
	tr.Add(1000)
	tr.Done()
	lines := strings.Count(out.String(), "transfer progress")
	if lines != 1 || !strings.Contains(out.String(), `"bytes":2000,"total":3000`) {
		t.Errorf("want one progress line at 2000/3000 bytes, got:\n%s", out.String())
	}
}
