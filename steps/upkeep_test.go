package steps_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/cache"
	"github.com/rootfsctl/rootfsctl/internal/fixture"
	"github.com/rootfsctl/rootfsctl/steps"
)

// TestCacheUpkeepPrunesOnlyAfterAChange: the after-run hook prunes the
// cache to its size only when the run changed something and failed
// nothing; the before-run hook clears a dead run's temporaries and keeps
// entries.
func TestCacheUpkeepPrunesOnlyAfterAChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		outcome  engine.Outcome
		statuses []engine.Status
		pruned   bool
	}{
		{"changed", engine.OutcomeOK, []engine.Status{engine.StatusChanged, engine.StatusUnchanged}, true},
		{"nothing changed", engine.OutcomeOK, []engine.Status{engine.StatusUnchanged}, false},
		{"changed but failed", engine.OutcomeFailed, []engine.Status{engine.StatusChanged, engine.StatusFailed}, false},
		{"changed but interrupted", engine.OutcomeInterrupted, []engine.Status{engine.StatusChanged, engine.StatusCancelled}, false},
		{"empty", engine.OutcomeOK, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cache.New(t.TempDir())
			entry := putEntry(t, c, []byte("an entry of some bytes"))
			dead := filepath.Join(c.Dir(), "tmp", "left-by-a-killed-run")
			if err := os.WriteFile(dead, []byte("partial"), 0o600); err != nil {
				t.Fatal(err)
			}
			before, after := steps.CacheUpkeep(c, 0)
			before(context.Background())
			if _, err := os.Stat(entry); err != nil {
				t.Fatalf("the before-run hook removed an entry: %v", err)
			}
			if _, err := os.Stat(dead); !os.IsNotExist(err) {
				t.Errorf("the before-run hook left a dead run's temporary (stat: %v)", err)
			}
			rep := &engine.Report{Status: tc.outcome}
			for _, s := range tc.statuses {
				rep.Steps = append(rep.Steps, engine.StepResult{Status: s})
			}
			after(context.Background(), rep)
			_, err := os.Stat(entry)
			if gone := os.IsNotExist(err); gone != tc.pruned {
				t.Errorf("entry removed = %v, want %v (stat: %v)", gone, tc.pruned, err)
			}
		})
	}
}

func putEntry(t *testing.T, c *cache.Cache, data []byte) string {
	t.Helper()
	digest, err := fixture.CacheEntry(c, data)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(c.Dir(), "sha256", digest)
}
