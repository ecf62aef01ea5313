package main

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"

	"github.com/rootfsctl/rootfsctl/engine"
)

// barProgress shows all transfers of a run on one terminal bar: bytes so
// far, the total of the transfers known so far, and the rate.
type barProgress struct {
	mu     sync.Mutex
	out    io.Writer
	bar    *progressbar.ProgressBar
	total  int64
	active int
}

func newBarProgress(out io.Writer) *barProgress { return &barProgress{out: out} }

func (p *barProgress) Track(name string, total int64) engine.Tracker {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("transferring"),
		)
	}
	if total > 0 {
		p.total += total
		p.bar.ChangeMax64(p.total)
	}
	p.active++
	p.bar.Describe(name)
	return &barTracker{p: p}
}

type barTracker struct {
	p    *barProgress
	once sync.Once
}

func (t *barTracker) Add(n int64) { _ = t.p.bar.Add64(n) }

func (t *barTracker) Done() {
	t.once.Do(func() {
		t.p.mu.Lock()
		defer t.p.mu.Unlock()
		if t.p.active--; t.p.active == 0 {
			_ = t.p.bar.Finish()
			t.p.bar, t.p.total = nil, 0
		}
	})
}

// logProgress reports transfers as log lines, at most one per transfer
// every interval, for runs without a terminal.
type logProgress struct {
	log      zerolog.Logger
	interval time.Duration
}

func (p logProgress) Track(name string, total int64) engine.Tracker {
	now := time.Now()
	return &logTracker{p: p, name: name, total: total, start: now, last: now}
}

type logTracker struct {
	p        logProgress
	name     string
	total, n int64
	start    time.Time
	mu       sync.Mutex
	last     time.Time
	once     sync.Once
}

func (t *logTracker) Add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n += n
	if time.Since(t.last) >= t.p.interval {
		t.last = time.Now()
		t.event(t.p.log.Info()).Msg("transfer progress")
	}
}

func (t *logTracker) Done() {
	t.once.Do(func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.event(t.p.log.Debug()).Msg("transfer done")
	})
}

func (t *logTracker) event(e *zerolog.Event) *zerolog.Event {
	secs := time.Since(t.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(t.n) / secs / 1e6
	}
	return e.Str("transfer", t.name).Int64("bytes", t.n).Int64("total", t.total).Float64("MBps", float64(int(rate*10))/10)
}
