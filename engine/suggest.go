package engine

import (
	"fmt"
	"sort"
	"strings"
)

// Suggest returns ` (did you mean "x"?)` for the candidate closest to got
// within a small edit distance, or "" when nothing is close.
func Suggest(got string, candidates []string) string { return suggest(got, candidates) }

// maxSuggestLen: the edit distance costs the product of the lengths, so
// names longer than any sensible identifier get no suggestion.
const maxSuggestLen = 64

// maxSuggestWork bounds the work "did you mean" may do for one plan, in
// edit-distance cells (about a quarter of a second): each suggestion
// compares a name with every candidate, so a plan of many bad names and
// many candidates would otherwise cost their product.
const maxSuggestWork = 1 << 27

func suggest(got string, candidates []string) string {
	if len(got) > maxSuggestLen {
		return ""
	}
	limit := max(2, len(got)/3)
	lower := strings.ToLower(got)
	best, bestD := "", 0
	for _, c := range candidates {
		// The distance is at least the difference of the lengths: a
		// candidate further than the limit could not be suggested.
		if len(c) > maxSuggestLen || abs(len(c)-len(got)) > limit {
			continue
		}
		d := levenshtein(lower, strings.ToLower(c))
		if best == "" || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// hints makes suggestions within a budget of work, maxSuggestWork: once a
// suggestion would pass it, no more are made. What a suggestion costs is
// counted before it is made (one per candidate and the cells of each
// distance), so the hints do not depend on the order of the candidates.
type hints struct{ work int }

func (h *hints) suggest(got string, candidates []string) string {
	if len(got) > maxSuggestLen || h.work >= maxSuggestWork {
		return ""
	}
	cost := 0
	for _, c := range candidates {
		cost++
		if len(c) <= maxSuggestLen {
			cost += len(got) * len(c)
		}
	}
	h.work += cost
	if h.work > maxSuggestWork {
		h.work = maxSuggestWork
		return ""
	}
	return suggest(got, candidates)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
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
