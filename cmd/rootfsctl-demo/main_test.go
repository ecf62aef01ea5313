package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoRunsAgainAndAgain holds the README's `make demo` to its promise:
// the demo works offline, and again on the same ./demo (a new registry port
// each time is the same image), without removing anything in between.
func TestDemoRunsAgainAndAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the demo three times")
	}
	work := t.TempDir()
	bin := filepath.Join(work, "rootfsctl")
	for _, b := range [][2]string{{bin, "../rootfsctl"}, {filepath.Join(work, "demo-driver"), "."}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(work, "plans"), 0o755); err != nil {
		t.Fatal(err)
	}
	plan, err := os.ReadFile("../../plans/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "plans", "demo.yaml"), plan, 0o644); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		cmd := exec.Command(filepath.Join(work, "demo-driver"), bin)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("demo round %d: %v\n%s", round, err, out)
		}
		if !strings.Contains(string(out), "6 steps: 6 unchanged") {
			t.Errorf("demo round %d: the last apply did not find every step unchanged:\n%s", round, out)
		}
	}
}

// --help prints the usage and starts nothing; a flag it does not know is a
// usage error (it used to be taken for the rootfsctl binary's path).
func TestDemoHelp(t *testing.T) {
	work := t.TempDir()
	driver := filepath.Join(work, "demo-driver")
	if out, err := exec.Command("go", "build", "-o", driver, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(driver, "--help")
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "usage: rootfsctl-demo") {
		t.Errorf("--help: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(work, "demo")); err == nil {
		t.Error("--help provisioned ./demo")
	}
	cmd = exec.Command(driver, "--bogus")
	cmd.Dir = work
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 64 {
		t.Errorf("--bogus: %v, want exit 64", err)
	}
}
