package steps_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestConcurrentAppliesShareHostDirectories: applies of different machines
// on one host run at once, sharing the nspawn config directory, the
// machines directory and the download cache. Every step of every run must
// succeed at its first attempt (the demo plan's retries would hide a
// failure): a run's cleanup removes only what no live process holds, never
// another run's file in the middle of being written.
func TestConcurrentAppliesShareHostDirectories(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	shared := mustCache(t)
	const machines, rounds = 6, 8
	nspawnDir := filepath.Join(s.out, "etc/systemd/nspawn")
	for round := range rounds {
		// After the first round only the nspawn settings are missing, so
		// every run writes them, and cleans up beside them, at once.
		if round > 0 {
			if err := os.RemoveAll(nspawnDir); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]string, machines)
		for i := range machines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				machine := fmt.Sprintf("node%d", i)
				var log bytes.Buffer
				rep, err := s.apply(shared, zerolog.New(zerolog.SyncWriter(&log)).Level(zerolog.WarnLevel), map[string]string{"machine": machine})
				if err != nil {
					errs[i] = fmt.Sprintf("%s: %v", machine, err)
					return
				}
				for _, st := range rep.Steps {
					if st.Attempts > 1 || (st.Status != engine.StatusChanged && st.Status != engine.StatusUnchanged) {
						errs[i] = fmt.Sprintf("%s: step %s %s after %d attempts; warnings:\n%s", machine, st.ID, st.Status, st.Attempts, log.String())
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, e := range errs {
			if e != "" {
				t.Errorf("round %d: %s", round, e)
			}
		}
	}
	entries, err := os.ReadDir(nspawnDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), steps.TempPrefix) {
			t.Errorf("%s: temporary file left: %s", nspawnDir, e.Name())
		}
	}
	if len(entries) != machines {
		t.Errorf("%s holds %d files, want one .nspawn per machine (%d)", nspawnDir, len(entries), machines)
	}
}

// TestPruneBesideRunningApplies: a `cache prune --all` looping beside cold
// applies that share the cache removes entries they are about to install;
// every apply still succeeds on its first attempt.
func TestPruneBesideRunningApplies(t *testing.T) {
	t.Parallel()
	s := newStand(t)
	shared := mustCache(t)
	stop := make(chan struct{})
	pruned := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				pruned <- n
				return
			default:
			}
			if _, err := shared.Prune(context.Background(), 0); err == nil {
				n++
			}
		}
	}()
	for round := range 6 {
		var wg sync.WaitGroup
		errs := make([]string, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				machine := fmt.Sprintf("r%dn%d", round, i)
				var log bytes.Buffer
				rep, err := s.apply(shared, zerolog.New(zerolog.SyncWriter(&log)).Level(zerolog.WarnLevel), map[string]string{"machine": machine})
				if err != nil {
					errs[i] = err.Error()
					return
				}
				for _, st := range rep.Steps {
					if st.Attempts > 1 || st.Status != engine.StatusChanged {
						errs[i] = fmt.Sprintf("%s: step %s %s after %d attempts: %s\n%s", machine, st.ID, st.Status, st.Attempts, st.Error, log.String())
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, e := range errs {
			if e != "" {
				t.Error(e)
			}
		}
	}
	close(stop)
	if n := <-pruned; n == 0 {
		t.Error("the prune loop never ran")
	}
}
