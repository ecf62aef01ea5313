package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/engine"
)

const runDoc = `Runs a command (an argv list, no shell). Its stdout and stderr go to
the step's log line by line (a line longer than 64 KiB is cut). A non-zero
exit fails the step: the message's first line is the exit status and the
last non-empty line of stderr, the lines after it the last 10 non-empty
lines of stderr. With creates, the step is up to date when that path
exists; without it, the command runs on every apply.
On cancellation or timeout the command's process group gets SIGTERM, then
SIGKILL after 5 seconds; by then the step has ended, also when a process
that left the group (setsid) still holds the command's stdout or stderr.
A command that exits leaving a background process holding them succeeds
once those 5 seconds have passed.`

const (
	// stderrTail is how many stderr lines a failure message quotes.
	stderrTail = 10
	// maxLogLine bounds one logged line of a command's output; the rest of
	// a longer line is dropped.
	maxLogLine = 64 << 10
	// maxTailLine bounds a stderr line quoted in a failure message.
	maxTailLine = 512
	// DefaultKillGrace is how long a cancelled command has between SIGTERM
	// and SIGKILL, and a finished one's leftover children to let go of its
	// output.
	DefaultKillGrace = 5 * time.Second
)

// RunParams are the parameters of the run step.
type RunParams struct {
	Command []string          `yaml:"command" jsonschema:"required,minItems=1" jsonschema_description:"The program and its arguments. Use [sh, -c, '...'] for shell syntax."`
	Dir     engine.AbsPath    `yaml:"dir" jsonschema_description:"Working directory, absolute (default: rootfsctl's)."`
	Env     map[string]string `yaml:"env" jsonschema_description:"Environment variables added to rootfsctl's own."`
	Creates string            `yaml:"creates" jsonschema_description:"A path; when it exists the step is up to date and the command does not run."`
}

// ExtendSchema is the schema's half of problems: the program name is not
// empty, environment names hold no "=", and a relative creates (a literal
// one: a variable may expand to an absolute path) needs dir.
func (RunParams) ExtendSchema(s map[string]any) {
	props, _ := s["properties"].(map[string]any)
	if env, ok := props["env"].(map[string]any); ok {
		// No "=" or NUL, and no "${" (a $ run followed by "{").
		env["propertyNames"] = map[string]any{"minLength": 1, "pattern": "^([^=\\x00$]|\\$+[^{=\\x00$])*\\$*$"}
	}
	relative := map[string]any{"anyOf": []any{
		map[string]any{"type": []string{"number", "boolean"}},
		map[string]any{"type": "string", "minLength": 1, "not": map[string]any{"anyOf": []any{
			map[string]any{"pattern": "^/"}, map[string]any{"pattern": "\\$\\{"},
		}}},
	}}
	noDir := map[string]any{"anyOf": []any{
		map[string]any{"not": map[string]any{"required": []string{"dir"}}},
		map[string]any{"properties": map[string]any{"dir": map[string]any{"enum": []any{nil, ""}}}},
	}}
	s["allOf"] = []any{
		map[string]any{"not": map[string]any{"properties": map[string]any{"command": map[string]any{"items": []any{map[string]any{"enum": []any{"", nil}}}}}}},
		map[string]any{"not": map[string]any{"required": []string{"creates"}, "properties": map[string]any{"creates": relative}, "allOf": []any{noDir}}},
	}
}

// problems are the findings no single field shows.
func (p *RunParams) problems() engine.FieldErrors {
	var errs engine.FieldErrors
	if len(p.Command) > 0 && p.Command[0] == "" {
		errs = append(errs, engine.FieldError{Path: "command[0]", Message: "the program name must not be empty"})
	}
	if p.Creates != "" && !filepath.IsAbs(p.Creates) && p.Dir == "" {
		errs = append(errs, engine.FieldError{Path: "creates", Message: "a relative path needs dir (or make it absolute)"})
	}
	for k := range p.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			errs = append(errs, engine.FieldError{Path: "env", Message: fmt.Sprintf("invalid environment variable name %q", k)})
		case strings.Contains(k, "${"):
			errs = append(errs, engine.FieldError{Path: "env", Message: fmt.Sprintf("environment variable name %q: variables are not expanded in names, only in values", k)})
		}
	}
	return errs
}

type runStep struct {
	p     RunParams
	grace time.Duration
}

func newRun(_ string, p *RunParams, o *Options) (engine.Step, error) {
	if errs := p.problems(); len(errs) > 0 {
		return nil, errs
	}
	return &runStep{p: *p, grace: o.KillGrace}, nil
}

func (s *runStep) creates() string {
	if s.p.Creates == "" || filepath.IsAbs(s.p.Creates) {
		return s.p.Creates
	}
	return filepath.Join(s.p.Dir.String(), s.p.Creates)
}

func (s *runStep) Check(_ context.Context) (engine.Change, error) {
	c := s.creates()
	if c == "" {
		return engine.NeedsChange("runs on every apply (no creates)"), nil
	}
	_, err := os.Lstat(c)
	// Said cleaned (plans/../demo is demo), checked as written.
	switch shown := filepath.Clean(c); {
	case err == nil:
		return engine.UpToDate(shown + " exists"), nil
	case errors.Is(err, os.ErrNotExist):
		return engine.NeedsChange(shown + " does not exist"), nil
	}
	return engine.Change{}, fmt.Errorf("stat %s: %w", c, err)
}

func (s *runStep) Apply(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	prog := s.p.Command[0]
	cmd, err := s.command(ctx)
	if err != nil {
		return err
	}
	tail := &lineTail{max: stderrTail}
	stdout := &lineLog{log: log, stream: "stdout"}
	stderr := &lineLog{log: log, stream: "stderr", tail: tail}
	// Writers, not pipes we read ourselves: exec copies into them, and
	// WaitDelay bounds how long Wait waits for that copying, so a process
	// holding the pipes open cannot keep the step running.
	cmd.Stdout, cmd.Stderr = stdout, stderr

	// A process group of its own, so cancellation reaches the command's
	// children too: SIGTERM at once, SIGKILL after the grace period.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	k := &groupKiller{grace: s.grace}
	cmd.Cancel = func() error { k.start(cmd.Process.Pid); return nil }
	// After the grace period (counted from the command's exit or its
	// cancellation) the pipes are closed, even if something outside the
	// group, such as a setsid child, still holds them.
	cmd.WaitDelay = s.grace

	if err := cmd.Start(); err != nil {
		return engine.Permanent(fmt.Errorf("start %s: %w", prog, err))
	}
	err = cmd.Wait()
	stdout.flush()
	stderr.flush()
	if ctx.Err() != nil {
		// Whatever of the group outlived the leader ends by the SIGKILL.
		k.finish()
		return fmt.Errorf("run %s: %w", prog, ctx.Err())
	}
	return s.outcome(log, err, tail)
}

// command is the command to run, in its directory, with rootfsctl's
// environment and the step's variables (in name order) added.
func (s *runStep) command(ctx context.Context) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, s.p.Command[0], s.p.Command[1:]...)
	cmd.Dir = s.p.Dir.String()
	if cmd.Dir != "" {
		// Said here, or exec blames the program for a missing directory.
		if fi, err := os.Stat(cmd.Dir); err != nil || !fi.IsDir() {
			return nil, engine.Permanent(fmt.Errorf("working directory %s does not exist or is not a directory", cmd.Dir))
		}
	}
	cmd.Env = os.Environ()
	for _, k := range slices.Sorted(maps.Keys(s.p.Env)) {
		cmd.Env = append(cmd.Env, k+"="+s.p.Env[k])
	}
	cmd.Stdin = nil
	return cmd, nil
}

// outcome turns how the command ended into the step's error. The first
// line of a failure is what a table shows: it ends with the last thing
// the command said, and the tail of stderr follows.
func (s *runStep) outcome(log *zerolog.Logger, err error, tail *lineTail) error {
	prog := s.p.Command[0]
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		log.Warn().Dur("graceMs", s.grace).Msg("the command exited but a background process still held its output; stopped reading it")
		return nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("run %s: %w", prog, err)
	}
	msg := fmt.Sprintf("%s exited with status %d", prog, exit.ExitCode())
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		msg = fmt.Sprintf("%s was killed by %s", prog, unix.SignalName(ws.Signal()))
	}
	if last := tail.last(); last != "" {
		msg += ": " + last + "\n" + tail.String()
	}
	return errors.New(msg)
}

// groupKiller sends SIGTERM to a process group and SIGKILL after the
// grace period.
type groupKiller struct {
	grace  time.Duration
	mu     sync.Mutex
	pgid   int
	killed chan struct{} // closed once SIGKILL was sent
	timer  *time.Timer
}

func (k *groupKiller) start(pgid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pgid, k.killed = pgid, make(chan struct{})
	// Errors mean the group is gone already: nothing left to stop.
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	k.timer = time.AfterFunc(k.grace, func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		close(k.killed)
	})
}

// finish waits for the SIGKILL if anything of the group still runs, so
// that the step ends only when its processes have (a process group's id
// is not reused while it has members); otherwise it stops the timer.
func (k *groupKiller) finish() {
	k.mu.Lock()
	pgid, killed, timer := k.pgid, k.killed, k.timer
	k.mu.Unlock()
	if timer == nil {
		return // the command ended before it was cancelled
	}
	if !groupRunning(pgid) {
		timer.Stop()
		return
	}
	<-killed
	// SIGKILL is delivered asynchronously; a killed process needs a moment
	// to exit. Bounded: a process stuck in the kernel is not waited for.
	for range 100 {
		if !groupRunning(pgid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupRunning reports whether a process of group pgid is still running
// (zombies do not count: nothing is left to stop).
func groupRunning(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell: wait for the SIGKILL
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		rest := string(b)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) && pid > 0 {
			return true
		}
	}
	return false
}

// lineLog sends each line written to it to the step's log and, if tail is
// set, keeps the last lines for the failure message. It holds at most one
// line of maxLogLine bytes: the rest of a longer line is dropped.
type lineLog struct {
	log     *zerolog.Logger
	stream  string
	tail    *lineTail
	buf     []byte
	cut     bool // dropping the rest of a line longer than maxLogLine
	dropped int
}

func (l *lineLog) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLogLine - len(l.buf); len(chunk) > room {
			l.dropped += len(chunk) - room
			chunk = chunk[:room]
			l.cut = true
		}
		l.buf = append(l.buf, chunk...)
		if i < 0 {
			break
		}
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLog) emit() {
	line := string(l.buf)
	ev := l.log.Info().Str("stream", l.stream)
	if l.cut {
		ev = ev.Int("droppedBytes", l.dropped)
	}
	ev.Msg(line)
	if l.tail != nil {
		l.tail.add(line)
	}
	l.buf, l.cut, l.dropped = l.buf[:0], false, 0
}

// flush emits a last line that had no newline.
func (l *lineLog) flush() {
	if len(l.buf) > 0 || l.cut {
		l.emit()
	}
}

// lineTail keeps the last non-empty lines, each cut to maxTailLine bytes.
type lineTail struct {
	max   int
	lines []string
}

func (t *lineTail) add(l string) {
	l = strings.TrimRight(l, "\r")
	if strings.TrimSpace(l) == "" {
		return
	}
	if len(l) > maxTailLine {
		l = l[:maxTailLine] + "…"
	}
	t.lines = append(t.lines, l)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

// last is the last non-empty line.
func (t *lineTail) last() string {
	if len(t.lines) == 0 {
		return ""
	}
	return t.lines[len(t.lines)-1]
}

func (t *lineTail) String() string { return strings.Join(t.lines, "\n") }
