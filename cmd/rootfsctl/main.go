// Command rootfsctl provisions systemd-nspawn machine root filesystems for
// Kubernetes nodes from declarative YAML plans.
//
// This package is the only place that reads os.Args, writes to stdout and
// stderr, handles signals and decides exit codes. It wires the step
// registry and hands everything else to the engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fetch"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
	"github.com/rootfsctl/rootfsctl/internal/oci"
	"github.com/rootfsctl/rootfsctl/steps"
)

// Exit codes. The README's table lists them; TestExitCodeTable holds each
// row to a scenario.
const (
	exitOK          = 0
	exitFailed      = 1   // invalid plan, failed step, failed preflight, I/O error
	exitChanges     = 2   // plan --detailed-exitcode: something would change
	exitUsage       = 64  // bad command line
	exitInterrupted = 130 // SIGINT or SIGTERM
)

// zerolog's formats are process-wide: set once, before any logger exists
// (in-process runs in tests build loggers concurrently). Millisecond
// timestamps: steps run concurrently and finish within milliseconds of each
// other. Durations are milliseconds too, in fields whose names end in Ms.
func init() {
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	zerolog.DurationFieldUnit = time.Millisecond
	zerolog.DurationFieldInteger = false
}

// stopGrace bounds how long rootfsctl may take to stop after SIGINT or
// SIGTERM: a run step's command gets 5 s after SIGTERM and 1 s more after
// SIGKILL, and the rest is cleanup. Past it, whatever still blocks (a read
// that ignores cancellation) does not keep the process alive.
const stopGrace = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		time.Sleep(stopGrace)
		fmt.Fprintf(os.Stderr, "Error: interrupted, and still not stopped after %s; exiting\n", stopGrace)
		os.Exit(exitInterrupted)
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit code chosen by a command; the message, if any,
// is printed by run.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError marks a bad command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes the CLI and maps its outcome to an exit code, in one place.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	pprof.StopCPUProfile() // no-op unless --cpuprofile started one; PostRun is skipped on errors
	if err == nil {
		return exitOK
	}
	if _, _, ferr := root.Find(args); ferr != nil {
		err = usageError{err} // unknown command
	}
	code, msg := classify(err)
	app.reportError(code, msg)
	return code
}

// classify maps an error to its exit code and the message to print, adding
// the flag names the engine does not know.
func classify(err error) (int, string) {
	var ee *exitError
	var ue usageError
	var ut *engine.UnknownTargetError
	var uv *engine.UnknownVarError
	switch {
	case errors.As(err, &ee):
		msg := ""
		if ee.err != nil {
			msg = ee.err.Error()
		}
		return ee.code, msg
	case errors.As(err, &ut):
		return exitUsage, "--target " + ut.Target + ": " + ut.Error()
	case errors.As(err, &uv):
		return exitUsage, uv.Error()
	case errors.As(err, &ue):
		return exitUsage, err.Error()
	case errors.Is(err, engine.ErrInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted, "interrupted"
	}
	return exitFailed, err.Error()
}

// app holds what every command shares: the streams, the global flags, and
// the one cache and step registry built from them.
type app struct {
	stdout, stderr io.Writer
	logFormat      string
	logLevel       string
	cacheDir       string
	cpuProfile     string
	registry       *engine.Registry
	cacheStore     *cache.Cache
	fetchClient    *fetch.Client
	mirror         *mirror.Mirror // where plans' content comes from; nil: upstream
	mirrorFallback bool
}

func newApp(stdout, stderr io.Writer) *app {
	if _, ok := stderr.(*os.File); !ok && stderr != nil {
		// Steps log from many goroutines: a writer that is not a file (a
		// test's buffer) gets one write at a time.
		stderr = &lockedWriter{w: stderr}
	}
	return &app{stdout: stdout, stderr: stderr}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// cache is the download cache the flags name; steps, hooks and the cache
// command share this one value.
func (a *app) cache() *cache.Cache {
	if a.cacheStore == nil {
		a.cacheStore = cache.New(a.cacheDir)
	}
	return a.cacheStore
}

// fetcher is the one download client of the command.
func (a *app) fetcher() *fetch.Client {
	if a.fetchClient == nil {
		a.fetchClient = fetch.New("rootfsctl/" + buildVersion())
	}
	return a.fetchClient
}

// ociRegistry is how the command reaches registries: the download
// client's transport, timeouts and retry policy, the Docker config's
// credentials.
func (a *app) ociRegistry() *oci.Registry {
	return oci.NewRegistry(authn.DefaultKeychain, a.fetcher())
}

// reg returns the step registry, built on first use from the flags.
func (a *app) reg() *engine.Registry {
	if a.registry == nil {
		a.registry = engine.NewRegistry()
		steps.Register(a.registry, steps.Options{
			Fetch:          a.fetcher(),
			Cache:          a.cache(),
			Privileged:     os.Geteuid() == 0,
			Mirror:         a.mirror,
			MirrorFallback: a.mirrorFallback,
		})
	}
	return a.registry
}

// defaultCacheDir is /var/cache/rootfsctl for root, the user's cache
// directory otherwise.
func defaultCacheDir() string {
	if os.Geteuid() == 0 {
		return "/var/cache/rootfsctl"
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rootfsctl")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("rootfsctl-cache-%d", os.Geteuid()))
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "rootfsctl",
		Short: "Provision systemd-nspawn machine root filesystems for Kubernetes nodes",
		Long: `rootfsctl runs declarative YAML plans: a graph of typed steps that
turn a host into a Kubernetes node running inside a systemd-nspawn container.
It validates plans without touching the system, shows their graph, reports
what would change, and applies them with bounded concurrency.`,
		Example: `  # Check plans in CI (every problem, as file:line:col: message)
  rootfsctl validate plans/*.yaml

  # See the steps and their order
  rootfsctl graph plans/kube-node.yaml

  # What would change, then apply
  rootfsctl plan plans/kube-node.yaml --var machine=kube1
  sudo rootfsctl apply plans/kube-node.yaml --var machine=kube1`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion(),
	}
	root.SetVersionTemplate(versionLine() + "\n")
	a.globalFlags(root)
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(a.helpCommand(root))
	root.AddCommand(
		a.validateCommand(), a.graphCommand(), a.planCommand(), a.preflightCommand(), a.applyCommand(),
		a.artifactsCommand(), a.mirrorCommand(),
		a.stepsCommand(), a.schemaCommand(), a.cacheCommand(), a.versionCommand(),
	)
	root.AddCommand(a.genDocsCommand(root))
	// The completion command captures its output stream when it is made.
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	describeCompletion(root)
	for _, c := range root.Commands() {
		if c.HasSubCommands() {
			groupCommand(c)
		}
	}
	return root
}

// globalFlags adds the flags every command takes, and what they start
// before a command runs.
func (a *app) globalFlags(root *cobra.Command) {
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "auto", "log format on stderr: auto (console on a terminal, JSON otherwise), console or json")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&a.cacheDir, "cache-dir", defaultCacheDir(), "content-addressed cache of downloads and image blobs, shared by runs and machines")
	root.PersistentFlags().StringVar(&a.cpuProfile, "cpuprofile", "", "write a CPU profile to this file (for performance work)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		// plan, apply and preflight check the log flags themselves, once
		// their result document can carry the error.
		if !emitsDocument(cmd) {
			if _, err := a.logger(); err != nil {
				return err
			}
		}
		if a.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(a.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) { pprof.StopCPUProfile() }
	_ = root.RegisterFlagCompletionFunc("log-format", fixedCompletions("auto", "console", "json"))
	_ = root.RegisterFlagCompletionFunc("log-level", fixedCompletions("debug", "info", "warn", "error"))
}

// reportError tells the user why the command failed: a line on stderr,
// or a JSON event when the logs are JSON lines, so that a log collector
// never meets a line it cannot parse.
func (a *app) reportError(code int, msg string) {
	if msg == "" && code != exitUsage {
		return // an exit code that is a result (plan --detailed-exitcode), not an error
	}
	hint := ""
	if code == exitUsage {
		hint = "Run with --help for usage."
	}
	if a.jsonLogs() {
		log := zerolog.New(a.stderr).With().Timestamp().Logger()
		ev := log.Error().Int("exitCode", code)
		if hint != "" {
			ev = ev.Str("hint", hint)
		}
		ev.Msg(msg)
		return
	}
	if msg != "" {
		fmt.Fprintln(a.stderr, "Error:", msg)
	}
	if hint != "" {
		fmt.Fprintln(a.stderr, hint)
	}
}

// jsonLogs reports whether logs go to stderr as JSON lines.
func (a *app) jsonLogs() bool {
	return a.logFormat == "json" || (a.logFormat == "auto" && !isTerminal(a.stderr))
}

// emitsDocument: the commands whose -o json gives one document whatever
// the outcome.
func emitsDocument(cmd *cobra.Command) bool {
	switch cmd.Name() {
	case "plan", "apply", "preflight":
		return true
	}
	return false
}

// logger builds the zerolog logger the flags ask for.
func (a *app) logger() (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(a.logLevel)
	if err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, a.logLevel) {
		return zerolog.Nop(), usagef("--log-level %q: use debug, info, warn or error", a.logLevel)
	}
	var w io.Writer = a.stderr
	switch a.logFormat {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: a.stderr, TimeFormat: "15:04:05.000", NoColor: !colour(a.stderr)}
	case "auto":
		if isTerminal(a.stderr) {
			w = zerolog.ConsoleWriter{Out: a.stderr, TimeFormat: "15:04:05.000", NoColor: !colour(a.stderr)}
		}
	default:
		return zerolog.Nop(), usagef("--log-format %q: use auto, console or json", a.logFormat)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// progress shows transfers as a bar on a terminal, as log lines otherwise.
func (a *app) progress(log zerolog.Logger) engine.Progress {
	if capable(a.stderr) && a.logFormat != "json" {
		return newBarProgress(a.stderr)
	}
	return logProgress{log: log, interval: 2 * time.Second}
}

// isTerminal: a terminal, read by a person (console log lines, not JSON),
// whatever it can show.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// capable: a terminal that can show a progress bar and colours (not
// TERM=dumb).
func capable(w io.Writer) bool { return isTerminal(w) && os.Getenv("TERM") != "dumb" }

// colour: a capable terminal that wants colours (no NO_COLOR).
func colour(w io.Writer) bool {
	_, noColor := os.LookupEnv("NO_COLOR")
	return capable(w) && !noColor
}
