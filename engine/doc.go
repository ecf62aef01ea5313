// Package engine turns a plan file into a validated graph of typed steps and
// applies it. It owns:
//
//   - loading (plan.go, loader.go, decode.go, vars.go, expand.go): the YAML
//     is decoded into each step type's parameter struct, starting from the
//     default value the type registered, with variables expanded under size
//     budgets (nodes, bytes of values, work spent on "did you mean"); every
//     problem becomes a Diagnostic with file:line:col, and all of them are
//     reported, sorted, not only the first: each once however many aliases
//     reach it, up to 1,000 listed and a last line counting any others;
//   - the step contract (step.go): Step (Check, Apply) plus optional
//     one-method capabilities (Preflighter, Prefetcher, Tidier, Resource)
//     and a Registry that cmd fills;
//   - the graph (graph.go): order, stages, --target style selection;
//     heimdalr/dag answers ancestor questions up to 2,000 steps, a linear
//     walk beyond;
//   - an apply (apply.go, scheduler.go, lock.go, preflight.go): Apply
//     locks, checks every step once, runs the preflight checks of the steps
//     that need a change, runs the steps within one concurrency budget
//     (internal/budget) with one retry policy (internal/retry), then the
//     caller's after-run hooks, and returns a Report;
//   - renderings (render_*.go): graphs as text, DOT, Mermaid and JSON;
//     diagnostics as text, JSON and GitHub annotations; reports as tables
//     and JSON; and the plan JSON Schema (schema.go).
//
// It never knows: concrete step types (steps registers them), command-line
// flags, stdout, stderr or exit codes (cmd), where artifacts come from or how
// machines are written (steps and internal/...). Apart from GatherHost it
// reads no host facts. It imports no rootfsctl package except the leaf
// packages internal/retry and internal/budget, which import none.
package engine
