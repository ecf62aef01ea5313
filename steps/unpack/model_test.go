package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rootfsctl/rootfsctl/steps/fixture"
	"github.com/rootfsctl/rootfsctl/steps/unpack"
)

// The reference model: an in-memory tree with the layer semantics written
// out plainly (no handles, no caching), to compare the Unpacker with.
//
// Paths resolve as in os.Root: symlinks in parent components are followed
// inside the tree; an absolute target or a ".." above the root escapes and
// is an error; so is a parent that is not a directory.

type node struct {
	kind   byte // 'd', 'f' or 'l'
	body   string
	target string
	kids   map[string]*node
}

func dir() *node { return &node{kind: 'd', kids: map[string]*node{}} }

func (n *node) clone() *node {
	c := *n
	if n.kids != nil {
		c.kids = map[string]*node{}
		for k, v := range n.kids {
			c.kids[k] = v.clone()
		}
	}
	return &c
}

var (
	errEscape    = errors.New("escapes the root")
	errNotDir    = errors.New("not a directory")
	errMissing   = errors.New("missing")
	errUndefined = errors.New("outside what the model decides") // the generator avoids these
)

// resolveDir finds the directory at p. With create, missing directories
// are made (MkdirAll); without, a missing one is errMissing.
func resolveDir(root *node, p string, create bool) (*node, error) {
	hops := 0
	stack, err := walk([]*node{root}, strings.Split(p, "/"), create, &hops)
	if err != nil {
		return nil, err
	}
	return stack[len(stack)-1], nil
}

// walk resolves the components todo from the directory stack (the root
// first), following symlinks.
func walk(stack []*node, todo []string, create bool, hops *int) ([]*node, error) {
	stack = slices.Clone(stack)
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 1 {
				return nil, errEscape
			}
			stack = stack[:len(stack)-1]
			continue
		}
		child := cur.kids[c]
		switch {
		case child == nil && !create:
			return nil, errMissing
		case child == nil:
			child = dir()
			cur.kids[c] = child
		case child.kind == 'l':
			if *hops++; *hops > 40 {
				return nil, errUndefined
			}
			if strings.HasPrefix(child.target, "/") {
				return nil, errEscape
			}
			link := strings.Split(child.target, "/")
			// Creating through a dangling link: what MkdirAll does there is
			// not what this model decides.
			if create {
				probe := 0
				if _, err := walk(stack, link, false, &probe); errors.Is(err, errMissing) || errors.Is(err, errUndefined) {
					return nil, errUndefined
				}
			}
			todo = append(link, todo...)
			continue
		case child.kind != 'd':
			return nil, errNotDir
		}
		stack = append(stack, child)
	}
	return stack, nil
}

type entry = fixture.Entry

// applyEntry applies one layer entry to the model.
func applyEntry(root *node, e entry, seen map[string]bool) error {
	name := path.Clean(e.Name)
	d, base := path.Split(name)
	d = strings.TrimSuffix(d, "/")
	if d == "" {
		d = "."
	}
	switch {
	case base == ".wh..wh..opq":
		n, err := resolveDir(root, d, false)
		if errors.Is(err, errMissing) {
			return nil
		}
		if err != nil {
			return err
		}
		for k := range n.kids {
			if !seen[path.Join(d, k)] {
				delete(n.kids, k)
			}
		}
		return nil
	case strings.HasPrefix(base, ".wh."):
		n, err := resolveDir(root, d, false)
		if errors.Is(err, errMissing) {
			return nil
		}
		if err != nil {
			return err
		}
		delete(n.kids, strings.TrimPrefix(base, ".wh."))
		return nil
	}
	parent, err := resolveDir(root, d, true)
	if err != nil {
		return err
	}
	seen[name] = true
	old := parent.kids[base]
	switch e.Type {
	case tar.TypeDir:
		if old == nil || old.kind != 'd' {
			parent.kids[base] = dir()
		}
	case tar.TypeSymlink:
		parent.kids[base] = &node{kind: 'l', target: e.Linkname}
	default:
		parent.kids[base] = &node{kind: 'f', body: e.Body}
	}
	return nil
}

// describe flattens a tree: path -> kind and content.
func describeModel(n *node, prefix string, out map[string]string) {
	for name, k := range n.kids {
		p := path.Join(prefix, name)
		switch k.kind {
		case 'd':
			out[p] = "dir"
			describeModel(k, p, out)
		case 'f':
			out[p] = "file " + k.body
		case 'l':
			out[p] = "symlink -> " + k.target
		}
	}
}

func describeDisk(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			out[rel] = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "symlink -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			out[rel] = "file " + string(b)
		default:
			out[rel] = "other " + fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// generate makes a random sequence of small layers that the model can
// decide: directories, files, symlinks to directories (retargeted later),
// whiteouts and opaque directories over a few names. A layer may end with
// an entry that must fail (an escaping link used as a parent).
func generate(r *rand.Rand) (layers [][]entry, wantErr bool) {
	names := []string{"a", "b", "c"}
	targets := []string{"a", "b", "c", "a/b", "../a", "b/../c", ".", "a/..", "/etc", "../../outside", "nowhere"}
	randPath := func() string {
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = names[r.IntN(len(names))]
		}
		return strings.Join(parts, "/")
	}
	model := dir()
	body := 0
	for range 1 + r.IntN(4) {
		var layer []entry
		seen := map[string]bool{}
		for range 1 + r.IntN(8) {
			var e entry
			p := randPath()
			switch k := r.IntN(100); {
			case k < 25:
				e = entry{Name: p + "/", Type: tar.TypeDir}
			case k < 50:
				body++
				e = entry{Name: p, Body: fmt.Sprintf("content %d", body)}
			case k < 72:
				e = entry{Name: p, Type: tar.TypeSymlink, Linkname: targets[r.IntN(len(targets))]}
			case k < 88:
				d, base := path.Split(p)
				e = entry{Name: d + ".wh." + base}
			default:
				e = entry{Name: p + "/.wh..wh..opq"}
			}
			trial, trialSeen := model.clone(), maps.Clone(seen)
			switch err := applyEntry(trial, e, trialSeen); {
			case err == nil:
				model, seen = trial, trialSeen
				layer = append(layer, e)
			case errors.Is(err, errEscape) && r.IntN(4) == 0:
				// Both must refuse it; nothing after it is compared.
				return append(layers, append(layer, e)), true
			}
		}
		layers = append(layers, layer)
	}
	return layers, false
}

func applyModel(layers [][]entry) *node {
	root := dir()
	for _, l := range layers {
		seen := map[string]bool{}
		for _, e := range l {
			if err := applyEntry(root, e, seen); err != nil {
				panic(fmt.Sprintf("model: generated entry %q fails: %v", e.Name, err))
			}
		}
	}
	return root
}

// TestUnpackerMatchesModel: random layer sequences applied by the
// Unpacker and by the reference model give the same tree, entry by entry,
// and nothing outside the target is ever touched. Symlinks retargeted in a
// later layer, and whiteouts removing a symlink's target, are where cached
// directory handles went stale.
func TestUnpackerMatchesModel(t *testing.T) {
	t.Parallel()
	const seeds = 400
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		layers, wantErr := generate(r)
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, "canary"), []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(base, "rootfs")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(target)
		if err != nil {
			t.Fatal(err)
		}
		u := unpack.New(root, unpack.Options{})
		var gotErr error
		for _, l := range layers {
			if gotErr = u.Layer(context.Background(), bytes.NewReader(fixture.Tar(l))); gotErr != nil {
				break
			}
		}
		u.Close()
		root.Close()
		show := func() string {
			var b strings.Builder
			for i, l := range layers {
				fmt.Fprintf(&b, "  layer %d:", i+1)
				for _, e := range l {
					fmt.Fprintf(&b, " %s", e.Name)
					if e.Type == tar.TypeSymlink {
						fmt.Fprintf(&b, "->%s", e.Linkname)
					}
				}
				b.WriteString("\n")
			}
			return b.String()
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 1 {
			t.Fatalf("seed %d: written outside the target: %v\n%s", seed, entries, show())
		}
		if b, _ := os.ReadFile(filepath.Join(outside, "canary")); string(b) != "untouched" {
			t.Fatalf("seed %d: the file outside was changed\n%s", seed, show())
		}
		if wantErr {
			if gotErr == nil {
				t.Errorf("seed %d: Layer() accepted an escaping entry\n%s", seed, show())
			}
			continue
		}
		if gotErr != nil {
			t.Errorf("seed %d: Layer(): %v, want success\n%s", seed, gotErr, show())
			continue
		}
		want := map[string]string{}
		describeModel(applyModel(layers), "", want)
		got := describeDisk(t, target)
		if !maps.Equal(got, want) {
			var diff []string
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if got[k] != want[k] {
					diff = append(diff, fmt.Sprintf("  %s: got %q, want %q", k, got[k], want[k]))
				}
			}
			for _, k := range slices.Sorted(maps.Keys(got)) {
				if _, ok := want[k]; !ok {
					diff = append(diff, fmt.Sprintf("  %s: got %q, want nothing", k, got[k]))
				}
			}
			t.Errorf("seed %d: the unpacked tree differs from the model:\n%s\n%s", seed, strings.Join(diff, "\n"), show())
		}
	}
}
