package engine

import (
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"time"

	"github.com/rootfsctl/rootfsctl/internal/retry"
)

// Duration is a time.Duration written as Go duration text in plans ("90s",
// "15m", "1h30m"; 0 for none).
type Duration time.Duration

// durationPattern is the duration syntax, shared by the decoder and the
// JSON Schema: units from largest to smallest, each at most once, at most
// six digits each, so no duration that matches can overflow.
var durationPattern = func() *regexp.Regexp {
	unit := func(u string) string { return `([0-9]{1,6}(\.[0-9]{1,9})?` + u + `)?` }
	return regexp.MustCompile(`^(0|` + unit("h") + unit("m") + unit("s") + unit("ms") + unit("(us|µs)") + unit("ns") + `)$`)
}()

func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if s == "" || !durationPattern.MatchString(s) {
		return fmt.Errorf("invalid duration %q (a number with a unit, at most 6 digits, units from largest to smallest: 500ms, 30s, 15m, 1h30m; 0 for none)", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %v", b, err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// FileMode is a Unix permission mode written in octal ("0644", "0o755", 644).
type FileMode uint32

func (m *FileMode) UnmarshalText(b []byte) error {
	s := string(b)
	if len(s) > 2 && (s[:2] == "0o" || s[:2] == "0O") {
		s = s[2:]
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("invalid file mode %q (use octal, such as 0644 or 0755)", b)
	}
	*m = FileMode(v)
	return nil
}

func (m FileMode) MarshalText() ([]byte, error) { return []byte(fmt.Sprintf("%04o", uint32(m))), nil }

// Retry says how often a step is attempted and how long to wait in between.
type Retry struct {
	Attempts int      `yaml:"attempts" json:"attempts" jsonschema:"minimum=1,maximum=100" jsonschema_description:"How many times the step is attempted in all (1 means no retry)."`
	Delay    Duration `yaml:"delay" json:"delay" jsonschema_description:"Wait before the second attempt; doubled after each further failure, with jitter. Default 1s."`
	MaxDelay Duration `yaml:"maxDelay" json:"maxDelay" jsonschema_description:"Upper bound for the wait between attempts. Default 30s."`
}

func (r Retry) policy() retry.Policy {
	return retry.Policy{Attempts: r.Attempts, Delay: time.Duration(r.Delay), MaxDelay: time.Duration(r.MaxDelay)}
}

// The waits between attempts when a plan sets none.
const (
	defaultRetryDelay    = time.Second
	defaultRetryMaxDelay = 30 * time.Second
)

// check: the first wait cannot be longer than the longest.
func (r *Retry) check() []FieldError {
	d, m := time.Duration(r.Delay), time.Duration(r.MaxDelay)
	if d == 0 {
		d = defaultRetryDelay
	}
	if m == 0 {
		m = defaultRetryMaxDelay
	}
	if d > m {
		field := "delay"
		if r.Delay == 0 {
			field = "maxDelay"
		}
		return []FieldError{{Path: field, Uses: []string{"delay", "maxDelay"},
			Message: fmt.Sprintf("delay %s is longer than maxDelay %s; waits never exceed maxDelay", d, m)}}
	}
	return nil
}

// FailurePolicy decides what a failed step does to the rest of the run.
type FailurePolicy string

const (
	FailFast  FailurePolicy = "fail-fast"
	KeepGoing FailurePolicy = "keep-going"
)

// Perm converts the octal mode to an fs.FileMode, mapping the setuid, setgid
// and sticky bits to Go's flags.
func (m FileMode) Perm() fs.FileMode {
	fm := fs.FileMode(m) & fs.ModePerm
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}
