package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestREADMEStatesTheTimeLimits ties the time limits the README promises
// to the values the code uses: changing one without the other fails.
func TestREADMEStatesTheTimeLimits(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(b)), " ")
	secs := func(d time.Duration) int { return int(d / time.Second) }
	for _, want := range []string{
		fmt.Sprintf("each has %d s", secs(engine.CheckTimeout)),
		fmt.Sprintf("then SIGKILL to the group after %d s", secs(steps.DefaultKillGrace)),
		fmt.Sprintf("rootfsctl exits within %d s of the signal", secs(stopGrace)),
		fmt.Sprintf("a `run` step's command gets %d s after SIGTERM", secs(steps.DefaultKillGrace)),
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("the README does not say %q", want)
		}
	}
}
