package unpack_test

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// symlinkChain is n symlinks, each to the next, the last to dir "end",
// and an entry written through the first.
func symlinkChain(n int) []fixture.Entry {
	l := []fixture.Entry{{Name: "end/", Type: tar.TypeDir}}
	for i := range n {
		target := fmt.Sprintf("/l%d", i+1)
		if i == n-1 {
			target = "/end"
		}
		l = append(l, fixture.Entry{Name: fmt.Sprintf("l%d", i), Type: tar.TypeSymlink, Linkname: target})
	}
	return append(l, fixture.Entry{Name: "l0/x", Body: "through the chain"})
}

// hostile is a stand for layers that try to reach outside the target: a
// directory outside with one file in it, and a name under the host's /etc
// that an escaping write would create.
type hostile struct {
	outside, victim, probe string
	in                     string // where outside's path lands inside the target
	up                     string // more ".." than any test path is deep
}

// probes numbers the hostile stands of one process, so that tests running
// at once look for probes of their own.
var probes atomic.Int64

func newHostile(t *testing.T) hostile {
	outside := t.TempDir()
	h := hostile{outside: outside, victim: filepath.Join(outside, "victim"), in: strings.TrimPrefix(outside, "/"),
		probe: fmt.Sprintf("rootfsctl-hostile-probe-%d-%d", os.Getpid(), probes.Add(1)), up: strings.Repeat("../", 16)}
	if err := os.WriteFile(h.victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

type hostileCase struct {
	name    string
	layers  [][]fixture.Entry
	wantErr error  // errors.Is; nil with wantMsg "": must succeed
	wantMsg string // refusals without a sentinel
	inside  map[string]string
}

// run applies each case's layers and checks the outcome, that nothing
// outside the target changed, and where inside the writes went.
func (h hostile) run(t *testing.T, cases []hostileCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, err := apply(t, false, tc.layers...)
			switch {
			case tc.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("Layer(): %v, want an error containing %q", err, tc.wantMsg)
				}
			case !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil):
				t.Errorf("Layer(): %v, want %v", err, tc.wantErr)
			}
			h.checkOutside(t)
			for p, want := range tc.inside {
				if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
					t.Errorf("%s in the target: %q %v, want %q", p, b, err, want)
				}
			}
		})
	}
}

func (h hostile) checkOutside(t *testing.T) {
	t.Helper()
	if b, _ := os.ReadFile(h.victim); string(b) != "untouched" {
		t.Fatalf("the file outside was changed: %q", b)
	}
	if fi, err := os.Stat(h.victim); err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Fatalf("the file outside was linked to: %v", err)
	}
	if entries, _ := os.ReadDir(h.outside); len(entries) != 1 {
		t.Fatalf("something was created outside: %v", entries)
	}
	if p := filepath.Join("/etc", h.probe); exists(p) {
		os.Remove(p) // best effort: the test has failed anyway
		t.Fatalf("%s was created outside the target", p)
	}
}

// TestHostileLayers: no entry, link or symlink can reach outside the
// target. Symlinks resolve as in a chroot at the target, as container
// runtimes resolve them: what a hostile one points at is inside the
// target, or the entry fails.
func TestHostileLayers(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	type layers = [][]fixture.Entry
	h.run(t, []hostileCase{
		{name: "dotdot entry", layers: layers{{{Name: "../escape", Body: "x"}}}, wantMsg: ".. in name"},
		{name: "dotdot inside", layers: layers{{{Name: "a/../../escape", Body: "x"}}}, wantMsg: ".. in name"},
		{name: "hard link out", layers: layers{{{Name: "h", Type: tar.TypeLink, Linkname: "../../" + h.victim}}}, wantMsg: "target outside the rootfs"},
		{name: "absolute symlink dir", layers: layers{{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: h.outside},
			{Name: "evil/victim", Body: "pwned"},
		}}, inside: map[string]string{h.in + "/victim": "pwned"}},
		{name: "absolute symlink dir from a lower layer", layers: layers{
			{{Name: "evil", Type: tar.TypeSymlink, Linkname: h.outside}},
			{{Name: "evil/victim", Body: "pwned"}},
		}, inside: map[string]string{h.in + "/victim": "pwned"}},
		{name: "relative symlink climbing above the root", layers: layers{{
			{Name: "a/b/evil", Type: tar.TypeSymlink, Linkname: h.up + h.outside},
			{Name: "a/b/evil/victim", Body: "pwned"},
		}}, inside: map[string]string{h.in + "/victim": "pwned"}},
		{name: "absolute symlink to /etc", layers: layers{{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "evil/" + h.probe, Body: "pwned"},
		}}, inside: map[string]string{"etc/" + h.probe: "pwned"}},
		{name: "hard link through symlink", layers: layers{{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: h.outside},
			{Name: "h", Type: tar.TypeLink, Linkname: "evil/victim"},
		}}, wantErr: fs.ErrNotExist},
		{name: "whiteout through symlink", layers: layers{
			{{Name: "evil", Type: tar.TypeSymlink, Linkname: h.outside}},
			{{Name: "evil/.wh.victim"}},
		}},
		{name: "opaque through symlink", layers: layers{
			{{Name: "evil", Type: tar.TypeSymlink, Linkname: h.up + h.outside}},
			{{Name: "evil/.wh..wh..opq"}},
		}},
		{name: "whiteout of dot dot", layers: layers{{{Name: "a/.wh..."}}}, wantMsg: "not a name"},
	})
	// An absolute entry name is relative to the rootfs, as in every runtime.
	dir, _, err := apply(t, false, []fixture.Entry{{Name: h.outside + "/victim", Body: "inside"}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, h.outside, "victim")); string(b) != "inside" {
		t.Errorf("absolute entry not placed inside the rootfs: %q", b)
	}
}

// TestHostileSymlinkChains: chains of symlinks stay inside the target
// however they climb, and loops end in ELOOP.
func TestHostileSymlinkChains(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	type layers = [][]fixture.Entry
	h.run(t, []hostileCase{
		{name: "symlink chain", layers: layers{
			{{Name: "a", Type: tar.TypeSymlink, Linkname: "/b/.."}, {Name: "b/", Type: tar.TypeDir}},
			{{Name: "c", Type: tar.TypeSymlink, Linkname: "a/../../" + h.up + "etc"}, {Name: "d", Type: tar.TypeSymlink, Linkname: "/c"}},
			{{Name: "d/" + h.probe, Body: "pwned"}},
		}, inside: map[string]string{"etc/" + h.probe: "pwned"}},
		{name: "symlink loop", layers: layers{{
			{Name: "a", Type: tar.TypeSymlink, Linkname: "b"},
			{Name: "b", Type: tar.TypeSymlink, Linkname: "/a"},
			{Name: "a/x", Body: "x"},
		}}, wantErr: unix.ELOOP},
		{name: "symlink to itself below", layers: layers{{
			{Name: "a", Type: tar.TypeSymlink, Linkname: "a/b"},
			{Name: "a/x", Body: "x"},
		}}, wantErr: unix.ELOOP},
		{name: "hard link through a loop", layers: layers{{
			{Name: "a", Type: tar.TypeSymlink, Linkname: "/a"},
			{Name: "h", Type: tar.TypeLink, Linkname: "a/x"},
		}}, wantErr: unix.ELOOP},
		{name: "longer chain than followed", layers: layers{symlinkChain(256)}, wantErr: unix.ELOOP},
	})
}

// TestEntriesReplaceHostileSymlinks: an entry at a symlink's name
// replaces the symlink; it never writes through it.
func TestEntriesReplaceHostileSymlinks(t *testing.T) {
	t.Parallel()
	h := newHostile(t)
	type layers = [][]fixture.Entry
	h.run(t, []hostileCase{
		{name: "file", layers: layers{
			{{Name: "evil", Type: tar.TypeSymlink, Linkname: h.victim}},
			{{Name: "evil", Body: "replaced"}},
		}, inside: map[string]string{"evil": "replaced"}},
		{name: "hard link", layers: layers{
			{{Name: "f", Body: "inside"}, {Name: "evil", Type: tar.TypeSymlink, Linkname: h.victim}},
			{{Name: "evil", Type: tar.TypeLink, Linkname: "f"}},
		}, inside: map[string]string{"evil": "inside"}},
		{name: "directory", layers: layers{
			{{Name: "evil", Type: tar.TypeSymlink, Linkname: h.outside}},
			{{Name: "evil/", Type: tar.TypeDir}, {Name: "evil/victim", Body: "inside"}},
		}, inside: map[string]string{"evil/victim": "inside"}},
	})
}
