package steps

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
)

const runDoc = `Runs a command (an argv list, no shell). Its stdout and stderr go to
the step's log line by line. A non-zero exit fails the step with the exit
code and the last lines of stderr. With creates, the step is up to date
when that path exists; without it, the command runs on every apply.
On cancellation the command's process group gets SIGTERM, then SIGKILL
after 5 seconds.`

// stderrTail is how many stderr lines a failure message quotes.
const stderrTail = 10

// RunParams are the parameters of the run step.
type RunParams struct {
	Command []string          `yaml:"command" jsonschema:"required,minItems=1" jsonschema_description:"The program and its arguments. Use [sh, -c, '...'] for shell syntax."`
	Dir     string            `yaml:"dir" jsonschema_description:"Working directory (default: rootfsctl's)."`
	Env     map[string]string `yaml:"env" jsonschema_description:"Environment variables added to rootfsctl's own."`
	Creates string            `yaml:"creates" jsonschema_description:"A path; when it exists the step is up to date and the command does not run."`
}

func (p *RunParams) Validate() []engine.FieldError {
	var errs []engine.FieldError
	if len(p.Command) > 0 && p.Command[0] == "" {
		errs = append(errs, engine.FieldError{Path: "command[0]", Message: "the program name must not be empty"})
	}
	if p.Creates != "" && !filepath.IsAbs(p.Creates) && p.Dir == "" {
		errs = append(errs, engine.FieldError{Path: "creates", Message: "a relative path needs dir (or make it absolute)"})
	}
	for k := range p.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, engine.FieldError{Path: "env", Message: fmt.Sprintf("invalid environment variable name %q", k)})
		}
	}
	return errs
}

type runStep struct{ p RunParams }

func newRun(_ string, p *RunParams) (engine.Step, error) { return &runStep{p: *p}, nil }

func (s *runStep) creates() string {
	if s.p.Creates == "" || filepath.IsAbs(s.p.Creates) {
		return s.p.Creates
	}
	return filepath.Join(s.p.Dir, s.p.Creates)
}

func (s *runStep) Check(_ context.Context) (engine.Change, error) {
	c := s.creates()
	if c == "" {
		return engine.NeedsChange("runs on every apply (no creates)"), nil
	}
	_, err := os.Lstat(c)
	switch {
	case err == nil:
		return engine.UpToDate(c + " exists"), nil
	case errors.Is(err, os.ErrNotExist):
		return engine.NeedsChange(c + " does not exist"), nil
	}
	return engine.Change{}, fmt.Errorf("stat %s: %w", c, err)
}

func (s *runStep) Apply(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	cmd := exec.CommandContext(ctx, s.p.Command[0], s.p.Command[1:]...)
	cmd.Dir = s.p.Dir
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(s.p.Env))
	for k := range s.p.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+s.p.Env[k])
	}
	cmd.Stdin = nil
	// A process group of its own, so cancellation reaches the command's children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second

	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("run %s: %w", s.p.Command[0], err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("run %s: %w", s.p.Command[0], err)
	}
	if err := cmd.Start(); err != nil {
		return engine.Permanent(fmt.Errorf("start %s: %w", s.p.Command[0], err))
	}
	tail := &lineTail{max: stderrTail}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); logLines(stdout, log, "stdout", nil) }()
	go func() { defer wg.Done(); logLines(stderr, log, "stderr", tail) }()
	wg.Wait()
	err = cmd.Wait()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("run %s: %w", s.p.Command[0], ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		msg := fmt.Sprintf("%s exited with status %d", s.p.Command[0], exit.ExitCode())
		if exit.ExitCode() < 0 {
			msg = fmt.Sprintf("%s was killed: %v", s.p.Command[0], exit.ProcessState)
		}
		if t := tail.String(); t != "" {
			msg += ": " + t
		}
		return errors.New(msg)
	}
	return fmt.Errorf("run %s: %w", s.p.Command[0], err)
}

// logLines sends each line of r to the step's log and, if tail is set, keeps
// the last lines for the failure message.
func logLines(r io.Reader, log *zerolog.Logger, stream string, tail *lineTail) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		log.Info().Str("stream", stream).Msg(line)
		if tail != nil {
			tail.add(line)
		}
	}
	// A line longer than the buffer ends the scan; drain the rest so the
	// command does not block on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

type lineTail struct {
	max   int
	lines []string
}

func (t *lineTail) add(l string) {
	t.lines = append(t.lines, l)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *lineTail) String() string { return strings.Join(t.lines, "\n") }
