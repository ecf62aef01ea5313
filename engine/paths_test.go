package engine

import (
	"math/rand/v2"
	"path"
	"strings"
	"testing"
)

// refAbs and refRel are the rules written as plainly as possible.
func refAbs(s string) (string, bool) {
	if !strings.HasPrefix(s, "/") || strings.ContainsRune(s, 0) {
		return "", false
	}
	c := path.Clean(s)
	return c, c != "/"
}

func refRel(s string) (string, bool) {
	if strings.HasPrefix(s, "/") || strings.ContainsRune(s, 0) {
		return "", false
	}
	// Walk the components: a .. that climbs above the start escapes.
	depth := 0
	var parts []string
	for _, c := range strings.Split(s, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", false
			}
			parts = parts[:len(parts)-1]
		default:
			depth++
			parts = append(parts, c)
		}
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, "/"), true
}

// dotFree says whether s has no . or .. component, the paths the schema
// (which cannot clean) must judge exactly like the validator.
func dotFree(s string) bool {
	for _, c := range strings.Split(s, "/") {
		if c == "." || c == ".." {
			return false
		}
	}
	return true
}

// TestPathTypesMatchReference: random paths built from /, ., .., names and
// odd characters, decoded by AbsPath and RelPath, against the reference;
// and the schema patterns agree with both on every path without . or ..
// components.
func TestPathTypesMatchReference(t *testing.T) {
	t.Parallel()
	parts := []string{"/", "/", "a", "b", ".", "..", "...", ".x", "..y", "x.", " ", "é", "//", "~"}
	rng := rand.New(rand.NewPCG(3, 9))
	for i := range 20000 {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteString(parts[rng.IntN(len(parts))])
		}
		s := b.String()

		var a AbsPath
		errA := a.UnmarshalText([]byte(s))
		wantA, okA := refAbs(s)
		if (errA == nil) != okA || (okA && string(a) != wantA) {
			t.Fatalf("case %d: AbsPath(%q) = %q, %v; reference %q, %v", i, s, a, errA, wantA, okA)
		}
		var r RelPath
		errR := r.UnmarshalText([]byte(s))
		wantR, okR := refRel(s)
		if (errR == nil) != okR || (okR && string(r) != wantR) {
			t.Fatalf("case %d: RelPath(%q) = %q, %v; reference %q, %v", i, s, r, errR, wantR, okR)
		}
		if dotFree(s) {
			if absPathPattern.MatchString(s) != okA {
				t.Fatalf("case %d: the schema pattern %s says %v for %q, the validator %v", i, absPathPattern, !okA, s, okA)
			}
			if relPathPattern.MatchString(s) != okR {
				t.Fatalf("case %d: the schema pattern %s says %v for %q, the validator %v", i, relPathPattern, !okR, s, okR)
			}
		}
	}
}
