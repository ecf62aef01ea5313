package engine

import (
	"fmt"
	"strings"
)

// checkNeeds reports needs naming missing steps or the step itself, and
// every dependency cycle at the needs entry that closes it.
func checkNeeds(d *diags, p *Plan) {
	// positions of needs entries, re-read from the source order
	ids := make([]string, 0, len(p.Steps))
	for _, s := range p.Steps {
		ids = append(ids, s.ID)
	}
	valid := map[string][]string{}
	for _, s := range p.Steps {
		seen := map[string]bool{}
		for i, need := range s.Needs {
			pos := s.needPos(i)
			switch {
			case need == s.ID:
				d.named(pos, s.ID, "a step cannot need itself")
			case p.byID[need] == nil:
				d.hinted(pos, s.ID, func() string { return d.hints.suggest(need, ids) }, "needs unknown step %q", need)
			case seen[need]:
				d.named(pos, s.ID, "needs %q more than once", need)
			default:
				seen[need] = true
				valid[s.ID] = append(valid[s.ID], need)
			}
		}
	}
	cycles, more := findCycles(ids, valid)
	for _, c := range cycles {
		s := p.byID[c.from]
		d.atPos(s.needPos(indexOf(s.Needs, c.to)), "dependency cycle: %s", cyclePath(c.path))
	}
	if more > 0 {
		last := cycles[len(cycles)-1]
		s := p.byID[last.from]
		d.atPos(s.needPos(indexOf(s.Needs, last.to)), "and %d more dependency %s (fix the ones above first)", more, map[bool]string{true: "cycle", false: "cycles"}[more == 1])
	}
}

// cycle is a dependency cycle closed by the edge from -> to (from needs to).
type cycle struct {
	from, to string
	path     []string
}

// maxCycles bounds how many cycles are reported one by one: a plan of many
// steps can hold as many cycles as edges, and listing them all would take
// memory and output quadratic in its size.
const maxCycles = 20

// findCycles walks needs depth-first in file order and returns one cycle per
// back edge, the first maxCycles of them, and how many more there are.
// Iterative, so deep plans cannot overflow the stack.
func findCycles(ids []string, needs map[string][]string) (out []cycle, more int) {
	state := make(map[string]int, len(ids)) // 0 new, 1 on stack, 2 done
	type frame struct {
		id   string
		next int
	}
	for _, start := range ids {
		if state[start] != 0 {
			continue
		}
		stack := []frame{{id: start}}
		path := []string{start}
		state[start] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next >= len(needs[top.id]) {
				state[top.id] = 2
				stack = stack[:len(stack)-1]
				path = path[:len(path)-1]
				continue
			}
			n := needs[top.id][top.next]
			top.next++
			switch state[n] {
			case 0:
				state[n] = 1
				stack = append(stack, frame{id: n})
				path = append(path, n)
			case 1:
				if len(out) == maxCycles {
					more++
					continue
				}
				i := indexOf(path, n)
				cyc := append(append([]string(nil), path[i:]...), n)
				out = append(out, cycle{from: top.id, to: n, path: cyc})
			}
		}
	}
	return out, more
}

// cyclePath shows a cycle, its middle elided when it is long.
func cyclePath(path []string) string {
	if len(path) <= 12 {
		return strings.Join(path, " -> ")
	}
	return fmt.Sprintf("%s -> … (%d steps) … -> %s", strings.Join(path[:6], " -> "), len(path)-1, strings.Join(path[len(path)-4:], " -> "))
}

// needPos is filled in by the loader: the position of the i-th needs entry.
func (s *PlanStep) needPos(i int) Pos {
	if i < len(s.needPositions) {
		return s.needPositions[i]
	}
	return s.Pos
}
