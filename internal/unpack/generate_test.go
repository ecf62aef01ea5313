package unpack_test

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
)

// generate makes a random sequence of small layers that the model can
// decide: directories, files, symlinks (retargeted later, relative,
// absolute, climbing above the root, dangling, to the real directory
// outside the target, in chains and loops), hard links, whiteouts and
// opaque markers (before and after the entries of their directory) over
// a few names. A layer may end with an entry that must fail (a symlink
// loop or a file as a parent, a hard link to nothing or to a directory).
func generate(r *rand.Rand, outside string) (layers [][]entry, wantErr bool) {
	g := generator{r: r, targets: []string{"a", "b", "c", "a/b", "../a", "b/../c", ".", "a/..", "..", "nowhere",
		"/a", "/b/c", "/", "/c/../a", "/etc", "../../outside", "../outside", "a/../../b", "../../../c/a", outside}}
	model := dir()
	for l := range 1 + r.IntN(4) {
		var layer []entry
		for range 1 + r.IntN(10) {
			e := g.entry(layer)
			trial := model.clone()
			switch err := applyEntry(trial, e, l+1); {
			case err == nil:
				model = trial
				layer = append(layer, e)
				if d, _ := splitPath(e.Name); d != "." {
					g.written = append(g.written, d)
				}
			case r.IntN(6) == 0:
				// Both must refuse it; nothing after it is compared.
				return append(layers, append(layer, e)), true
			}
		}
		layers = append(layers, layer)
	}
	return layers, false
}

type generator struct {
	r       *rand.Rand
	targets []string
	body    int
	// Parents of earlier entries: half the new entries go there, so that
	// layers write into (and over) what earlier entries left.
	written []string
}

var names = []string{"a", "b", "c"}

func (g *generator) path() string {
	if len(g.written) > 0 && g.r.IntN(2) == 0 {
		return g.written[g.r.IntN(len(g.written))] + "/" + names[g.r.IntN(len(names))]
	}
	parts := make([]string, 1+g.r.IntN(3))
	for i := range parts {
		parts[i] = names[g.r.IntN(len(names))]
	}
	return strings.Join(parts, "/")
}

// entry makes the next entry of a layer that has layer so far.
func (g *generator) entry(layer []entry) entry {
	p := g.path()
	switch k := g.r.IntN(100); {
	case k < 22:
		return entry{Name: p + "/", Type: tar.TypeDir}
	case k < 42:
		g.body++
		return entry{Name: p, Body: fmt.Sprintf("content %d", g.body)}
	case k < 62:
		return entry{Name: p, Type: tar.TypeSymlink, Linkname: g.targets[g.r.IntN(len(g.targets))]}
	case k < 70:
		return entry{Name: p, Type: tar.TypeLink, Linkname: g.path()}
	case k < 80:
		d, base := path.Split(p)
		return entry{Name: d + ".wh." + base}
	case len(layer) > 0 && g.r.IntN(3) > 0:
		// After entries of its directory, or of directories below it:
		// what the layer put there must stay, what lower layers left
		// beneath must go.
		return entry{Name: above(g.r, layer[g.r.IntN(len(layer))].Name) + ".wh..wh..opq"}
	}
	return entry{Name: p + "/.wh..wh..opq"}
}

// above returns a directory holding entry p, ending in "/": one of its
// parents (the root is "/"), or p itself if it is a directory.
func above(r *rand.Rand, p string) string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	n := len(parts) - 1
	if strings.HasSuffix(p, "/") {
		n++
	}
	return strings.Join(parts[:r.IntN(n+1)], "/") + "/"
}

func show(layers [][]entry) string {
	var b strings.Builder
	for i, l := range layers {
		fmt.Fprintf(&b, "  layer %d:", i+1)
		for _, e := range l {
			fmt.Fprintf(&b, " %s", e.Name)
			switch e.Type {
			case tar.TypeSymlink:
				fmt.Fprintf(&b, "->%s", e.Linkname)
			case tar.TypeLink:
				fmt.Fprintf(&b, "=>%s", e.Linkname)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
