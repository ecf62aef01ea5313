package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/rootfsctl/rootfsctl/engine"
)

type holdParams struct {
	Dir   string `yaml:"dir"`
	Block bool   `yaml:"block"`
}

// holder is a step changing one directory; a blocking one holds its lock
// until the run is cancelled, and says when it holds it.
type holder struct {
	p       holdParams
	started chan<- string
}

func (s *holder) Check(context.Context) (engine.Change, error) { return engine.NeedsChange("x"), nil }
func (s *holder) Apply(ctx context.Context) error {
	if !s.p.Block {
		return nil
	}
	s.started <- s.p.Dir
	<-ctx.Done()
	return ctx.Err()
}
func (s *holder) Resources() []string { return []string{s.p.Dir} }

func holdRegistry(started chan<- string) *engine.Registry {
	reg := engine.NewRegistry()
	engine.Register(reg, engine.StepType{Name: "hold", Summary: ""}, holdParams{}, func(id string, p *holdParams) (engine.Step, error) {
		return &holder{p: *p, started: started}, nil
	})
	return reg
}

// TestLockHoldsWhateverPathSpellsTheMachine: a machine is locked by what it
// is, not by how a plan spells it: through a symlinked directory, for a
// machine directory that exists and for one not created yet; and a plan
// naming one machine twice does not wait for itself.
func TestLockHoldsWhateverPathSpellsTheMachine(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.MkdirAll(filepath.Join(real, "existing"), 0o755); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(base, "alias")
	if err := os.Symlink(real, alias); err != nil {
		t.Fatal(err)
	}
	lockDir := t.TempDir()
	for _, machine := range []string{"existing", "not-yet"} {
		t.Run(machine, func(t *testing.T) {
			started := make(chan string, 1)
			reg := holdRegistry(started)
			_, g := loadString(t, reg, header+"steps:\n  a: {type: hold, with: {dir: "+filepath.Join(real, machine)+", block: true}}\n", nil)
			ctx, cancel := context.WithCancel(context.Background())
			first := make(chan error, 1)
			go func() {
				_, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir})
				first <- err
			}()
			<-started
			_, g2 := loadString(t, reg, header+"steps:\n  a: {type: hold, with: {dir: "+filepath.Join(alias, machine)+"}}\n", nil)
			_, err := engine.Apply(context.Background(), g2, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir})
			var le *engine.LockedError
			if !errors.As(err, &le) {
				t.Errorf("a run on %s while %s is held: %v, want a LockedError", filepath.Join(alias, machine), filepath.Join(real, machine), err)
			}
			cancel()
			<-first
		})
	}

	// One plan, one machine spelled two ways: it must not refuse itself.
	reg := holdRegistry(make(chan string, 2))
	_, g := loadString(t, reg, header+"steps:\n  a: {type: hold, with: {dir: "+filepath.Join(real, "existing")+"}}\n  b: {type: hold, with: {dir: "+filepath.Join(alias, "existing")+"}}\n", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if rep, err := engine.Apply(ctx, g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir}); err != nil || rep.Failed() {
		t.Errorf("a plan naming one machine twice: %v", err)
	}
}

// TestLockDirectoryMustBeOurs: the lock directory often sits where every
// user can write (/run/lock, /tmp). A symlink in place of it, a directory
// others can write, or a symlink named like a lock file is refused, and
// the file such a symlink points to is left alone.
func TestLockDirectoryMustBeOurs(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("important"), 0o644); err != nil {
		t.Fatal(err)
	}
	machine := filepath.Join(base, "machines", "m1")
	_, g := loadString(t, holdRegistry(nil), header+"steps:\n  a: {type: hold, with: {dir: "+machine+"}}\n", nil)
	run := func(lockDir string) error {
		_, err := engine.Apply(context.Background(), g, engine.ApplyOptions{Logger: zerolog.Nop(), LockDir: lockDir})
		return err
	}
	symlinked := filepath.Join(base, "symlinked")
	if err := os.Symlink(t.TempDir(), symlinked); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"a symlink": symlinked, "writable by others": open} {
		if err := run(dir); err == nil || !strings.Contains(err.Error(), "lock directory") {
			t.Errorf("lock directory that is %s: got %v, want it refused", name, err)
		}
	}
	// A planted lock file: find the name the run uses, then replace it.
	planted := t.TempDir()
	if err := run(planted); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(planted)
	if len(names) != 1 {
		t.Fatalf("lock files: %v", names)
	}
	lock := filepath.Join(planted, names[0].Name())
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, lock); err != nil {
		t.Fatal(err)
	}
	if err := run(planted); err == nil {
		t.Error("a lock file that is a symlink was used")
	}
	if b, _ := os.ReadFile(victim); string(b) != "important" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}
