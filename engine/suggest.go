package engine

import (
	"fmt"
	"sort"
	"strings"
)

// Suggest returns ` (did you mean "x"?)` for the candidate closest to got
// within a small edit distance, or "" when nothing is close.
func Suggest(got string, candidates []string) string { return suggest(got, candidates) }

func suggest(got string, candidates []string) string {
	// The edit distance costs the product of the lengths: names longer
	// than any sensible identifier get no suggestion.
	const maxLen = 64
	if len(got) > maxLen {
		return ""
	}
	best, bestD := "", 0
	for _, c := range candidates {
		if len(c) > maxLen {
			continue
		}
		d := levenshtein(strings.ToLower(got), strings.ToLower(c))
		if best == "" || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := max(2, len(got)/3)
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// validNames formats candidates for "expected one of" messages.
func validNames(candidates []string) string {
	c := append([]string(nil), candidates...)
	sort.Strings(c)
	return strings.Join(c, ", ")
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
