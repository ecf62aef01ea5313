package budget

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// threadPriority reads the calling thread's scheduling policy and nice
// value from /proc (fields 41 and 19 of its stat line).
func threadPriority() (policy, nice int, err error) {
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; fields start after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 39 {
		return 0, 0, fmt.Errorf("short stat line %q", s)
	}
	if nice, err = strconv.Atoi(f[16]); err != nil {
		return 0, 0, err
	}
	policy, err = strconv.Atoi(f[38])
	return policy, nice, err
}

// schedIdle is never used: it would starve background work on a busy host.
const schedIdle = 5

func lowered(policy, nice int) bool { return policy != schedIdle && nice == backgroundNice }

func TestBackgroundWorkRunsAtTheLowestPriority(t *testing.T) {
	b := New(4)
	ctx := With(context.Background(), b)
	check := func(wantLow bool) func(context.Context, int) error {
		return func(context.Context, int) error {
			p, n, err := threadPriority()
			if err != nil {
				return err
			}
			if lowered(p, n) != wantLow {
				return fmt.Errorf("policy %d, nice %d: lowered=%v, want %v", p, n, lowered(p, n), wantLow)
			}
			return nil
		}
	}
	bg := Background(ctx)
	for _, err := range b.Run(bg, 8, check(true)) {
		if err != nil {
			t.Fatalf("background Run: %v", err)
		}
	}
	// Helpers Each starts for background work are lowered too (the caller
	// of Each here is not one of the budget's goroutines, so only helpers
	// are checked).
	for _, err := range b.Run(bg, 1, func(ctx context.Context, _ int) error {
		return Each(ctx, 6, check(true))
	}) {
		if err != nil {
			t.Fatalf("background Each: %v", err)
		}
	}
	// The lowered threads ended with their goroutines: foreground work
	// started afterwards never lands on one.
	for round := 0; round < 20; round++ {
		for _, err := range b.Run(ctx, 8, check(false)) {
			if err != nil {
				t.Fatalf("foreground Run after background work, round %d: %v", round, err)
			}
		}
		if err := Each(ctx, 8, check(false)); err != nil {
			t.Fatalf("foreground Each after background work, round %d: %v", round, err)
		}
	}
	if isBackground(ctx) || !isBackground(bg) {
		t.Fatal("isBackground does not tell the two contexts apart")
	}
}

// procsAtStart is GOMAXPROCS before any test lowered a thread.
var procsAtStart = runtime.GOMAXPROCS(0)

// lowerTwice lowers a goroutine's thread twice over, as two background
// goroutines would, and returns the runtime's Ps afterwards.
func lowerTwice() int {
	for range 2 {
		done := make(chan struct{})
		go func() { defer close(done); LowerThread() }()
		<-done
	}
	return runtime.GOMAXPROCS(0)
}

// Lowering a thread gives the process twice its Ps, once; with GOMAXPROCS
// set in the environment (a child process of this test) it keeps them.
func TestLoweringAThreadGivesSparePs(t *testing.T) {
	if os.Getenv("BUDGET_PROCS_CHILD") != "" {
		fmt.Printf("procs %d\n", lowerTwice())
		return
	}
	want := 2 * procsAtStart
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		want = procsAtStart
	}
	if got := lowerTwice(); got != want {
		t.Fatalf("GOMAXPROCS after lowering threads = %d, want %d (started with %d)", got, want, procsAtStart)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoweringAThreadGivesSparePs$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BUDGET_PROCS_CHILD=1", "GOMAXPROCS=3")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "procs 3\n") {
		t.Fatalf("with GOMAXPROCS=3 set: %v, output %q, want procs 3", err, out)
	}
}
