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

	"github.com/rootfsctl/rootfsctl/internal/fixture"
)

// The reference model: an in-memory tree with the layer semantics written
// out plainly (no handles, no caching), to compare the Unpacker with.
//
// Paths resolve as in a chroot at the root, as container runtimes resolve
// them: symlinks in parent components are followed inside the tree, an
// absolute target starts again at the root, ".." at the root stays there,
// and following more than 255 symlinks is an error (a loop); so is a
// parent that is not a directory. Writing creates missing parents on the
// way, through dangling symlinks too. The final component of an entry is
// never followed.
//
// Opaque markers follow the OCI rule: they hide everything lower layers
// put under their directory, at any depth; what the marker's own layer put
// there stays, wherever in the layer it came. Each node remembers the last
// layer that wrote it or wrote into it, and that is what stays.

type node struct {
	kind   byte // 'd', 'f' or 'l'
	body   string
	target string
	kids   map[string]*node
	layer  int // the last layer with an entry at or under this node
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
	errLoop    = errors.New("too many symlinks")
	errNotDir  = errors.New("not a directory")
	errIsDir   = errors.New("is a directory") // a hard link to a directory
	errMissing = errors.New("missing")
)

// maxHops is the Unpacker's bound on symlinks followed in one path.
const maxHops = 255

// resolveDir finds the directory at p and returns the directories from
// the root down to it. With create, missing directories are made
// (MkdirAll); without, a missing one is errMissing.
func resolveDir(root *node, p string, create bool) ([]*node, error) {
	stack := []*node{root}
	todo := strings.Split(p, "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
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
			if hops++; hops > maxHops {
				return nil, errLoop
			}
			if strings.HasPrefix(child.target, "/") {
				stack = stack[:1]
			}
			todo = append(strings.Split(child.target, "/"), todo...)
			continue
		case child.kind != 'd':
			return nil, errNotDir
		}
		stack = append(stack, child)
	}
	return stack, nil
}

type entry = fixture.Entry

// splitPath cleans a layer path as the Unpacker does (a leading "/" is
// the rootfs) and splits it into its parent and base.
func splitPath(p string) (d, base string) {
	d, base = path.Split(path.Clean("/" + p)[1:])
	d = strings.TrimSuffix(d, "/")
	if d == "" {
		d = "."
	}
	return d, base
}

// applyEntry applies one entry of layer number layer to the model.
func applyEntry(root *node, e entry, layer int) error {
	d, base := splitPath(e.Name)
	switch {
	case base == ".wh..wh..opq":
		stack, err := resolveDir(root, d, false)
		if errors.Is(err, errMissing) {
			return nil
		}
		if err != nil {
			return err
		}
		prune(stack[len(stack)-1], layer)
		return nil
	case strings.HasPrefix(base, ".wh."):
		stack, err := resolveDir(root, d, false)
		if errors.Is(err, errMissing) {
			return nil
		}
		if err != nil {
			return err
		}
		delete(stack[len(stack)-1].kids, strings.TrimPrefix(base, ".wh."))
		return nil
	}
	stack, err := resolveDir(root, d, true)
	if err != nil {
		return err
	}
	for _, n := range stack[1:] {
		n.layer = layer
	}
	return place(root, stack[len(stack)-1], base, e, layer)
}

// place puts entry e at base in parent, replacing what was there (but
// keeping a directory where a directory goes).
func place(root, parent *node, base string, e entry, layer int) error {
	old := parent.kids[base]
	switch e.Type {
	case tar.TypeDir:
		if old == nil || old.kind != 'd' {
			old = dir()
			parent.kids[base] = old
		}
		old.layer = layer
		return nil
	case tar.TypeSymlink:
		parent.kids[base] = &node{kind: 'l', target: e.Linkname, layer: layer}
	case tar.TypeLink:
		// What was there goes first, as in tar: a link to itself finds nothing.
		delete(parent.kids, base)
		td, tbase := splitPath(e.Linkname)
		stack, err := resolveDir(root, td, false)
		if err != nil {
			return err
		}
		t := stack[len(stack)-1].kids[tbase]
		switch {
		case t == nil:
			return errMissing
		case t.kind == 'd':
			return errIsDir
		}
		// A new name for the same content; a node of its own, because
		// what stays under an opaque marker goes by name.
		parent.kids[base] = &node{kind: t.kind, body: t.body, target: t.target, layer: layer}
	default:
		parent.kids[base] = &node{kind: 'f', body: e.Body, layer: layer}
	}
	return nil
}

// prune is the opaque rule: under n, whatever no entry of this layer wrote
// (or wrote into) goes; a directory this layer wrote into stays and is
// pruned in turn.
func prune(n *node, layer int) {
	for k, kid := range n.kids {
		switch {
		case kid.layer != layer:
			delete(n.kids, k)
		case kid.kind == 'd':
			prune(kid, layer)
		}
	}
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
	out, err := fixture.Tree(dir, func(p string, fi fs.FileInfo) (string, error) {
		switch {
		case fi.IsDir():
			return "dir", nil
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			return "symlink -> " + target, err
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			return "file " + string(b), err
		}
		return "other " + fi.Mode().String(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	delete(out, ".") // the target itself is the caller's
	return out
}

func applyModel(layers [][]entry) *node {
	root := dir()
	for i, l := range layers {
		for _, e := range l {
			if err := applyEntry(root, e, i+1); err != nil {
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
// directory handles went stale; opaque markers after the entries of their
// directory are where lower content was left behind.
func TestUnpackerMatchesModel(t *testing.T) {
	t.Parallel()
	const seeds = 400
	for seed := range seeds {
		base := t.TempDir()
		outside, target := filepath.Join(base, "outside"), filepath.Join(base, "rootfs")
		for _, d := range []string{outside, target} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(outside, "canary"), []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		layers, wantErr := generate(rand.New(rand.NewPCG(uint64(seed), 7)), outside)
		gotErr := unpackAll(t, target, layers)
		if entries, _ := os.ReadDir(outside); len(entries) != 1 {
			t.Fatalf("seed %d: written outside the target: %v\n%s", seed, entries, show(layers))
		}
		if b, _ := os.ReadFile(filepath.Join(outside, "canary")); string(b) != "untouched" {
			t.Fatalf("seed %d: the file outside was changed\n%s", seed, show(layers))
		}
		switch {
		case wantErr && gotErr == nil:
			t.Errorf("seed %d: Layer() accepted an entry the model refuses\n%s", seed, show(layers))
		case !wantErr && gotErr != nil:
			t.Errorf("seed %d: Layer(): %v, want success\n%s", seed, gotErr, show(layers))
		case !wantErr:
			want := map[string]string{}
			describeModel(applyModel(layers), "", want)
			if diff := treeDiff(describeDisk(t, target), want); diff != "" {
				t.Errorf("seed %d: the unpacked tree differs from the model:\n%s\n%s", seed, diff, show(layers))
			}
		}
	}
}

// unpackAll applies layers to directory target, up to the first failure.
func unpackAll(t *testing.T, target string, layers [][]entry) error {
	t.Helper()
	u, done := openUnpacker(t, target)
	defer done()
	for _, l := range layers {
		if err := u.Layer(context.Background(), bytes.NewReader(fixture.Tar(l))); err != nil {
			return err
		}
	}
	return nil
}

// treeDiff says where got and want (as describeDisk puts them) differ.
func treeDiff(got, want map[string]string) string {
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
	return strings.Join(diff, "\n")
}
