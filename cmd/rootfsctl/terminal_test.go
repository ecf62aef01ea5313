package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// openPTY returns the terminal end of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here (%v): the terminal checks need one", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return pts
}

// TestTerminalOutput holds the README: on a terminal, logs are console
// lines, with colours and a progress bar unless TERM=dumb or NO_COLOR
// says otherwise; anywhere else they are JSON lines.
func TestTerminalOutput(t *testing.T) {
	tty := openPTY(t)
	file, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, tc := range []struct {
		name                   string
		out                    *os.File
		term                   string
		noColor                bool
		json, colours, fancies bool
	}{
		{name: "terminal", out: tty, term: "xterm-256color", colours: true, fancies: true},
		{name: "NO_COLOR", out: tty, term: "xterm", noColor: true, fancies: true},
		{name: "TERM=dumb", out: tty, term: "dumb"},
		{name: "a file", out: file, term: "xterm", json: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TERM", tc.term)
			t.Setenv("NO_COLOR", "") // restored afterwards
			os.Unsetenv("NO_COLOR")
			if tc.noColor {
				t.Setenv("NO_COLOR", "1")
			}
			a := newApp(os.Stdout, tc.out)
			a.logFormat = "auto"
			if got := a.jsonLogs(); got != tc.json {
				t.Errorf("JSON logs: %v, want %v", got, tc.json)
			}
			if got := colour(tc.out); got != tc.colours {
				t.Errorf("colours: %v, want %v", got, tc.colours)
			}
			_, bar := a.progress(zerolog.Nop()).(*barProgress)
			if bar != tc.fancies {
				t.Errorf("progress bar: %v, want %v", bar, tc.fancies)
			}
		})
	}
}
