package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A release build's -ldflags values are what version prints, in both
// formats, and --version agrees.
func TestVersionFromLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rootfsctl")
	ld := "-X main.version=v9.8.7 -X main.commit=0123456789abcdef0123456789abcdef01234567 -X main.date=2026-01-02T03:04:05Z"
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var got buildInfo
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	want := buildInfo{Version: "v9.8.7", Commit: "0123456789abcdef0123456789abcdef01234567",
		Date: "2026-01-02T03:04:05Z", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if got != want {
		t.Errorf("version -o json:\n got %+v\nwant %+v", got, want)
	}
	text, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{want.Version, want.Commit, want.Date, want.GoVersion, want.Platform} {
		if !strings.Contains(string(text), v) {
			t.Errorf("version lacks %q:\n%s", v, text)
		}
	}
	line, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(line), "rootfsctl v9.8.7 (") {
		t.Errorf("--version: %q, %v", line, err)
	}
}

// Without ldflags every field still has a value, and a bad -o is a usage
// error.
func TestVersionFallbacks(t *testing.T) {
	code, out, _ := cli(t, context.Background(), "version", "-o", "json")
	var b buildInfo
	if code != exitOK || json.Unmarshal([]byte(out), &b) != nil {
		t.Fatalf("version -o json: exit %d, %q", code, out)
	}
	if b.Version == "" || b.Commit == "" || b.Date == "" || b.GoVersion != runtime.Version() {
		t.Errorf("empty fields: %+v", b)
	}
	if code, _, _ := cli(t, context.Background(), "version", "-o", "yaml"); code != exitUsage {
		t.Errorf("version -o yaml: exit %d, want %d", code, exitUsage)
	}
}
