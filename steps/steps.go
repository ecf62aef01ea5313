// Package steps holds rootfsctl's step types. Each type is a typed parameter
// struct (decoded, defaulted and validated by the engine from its tags) and a
// builder returning an engine.Step. Steps exchange nothing in memory: their
// inputs are their parameters, their outputs land on disk.
//
// Steps must not read host facts themselves (they arrive as parameters), keep
// no global state, and never write into a machine directory through a plain
// path join: every such write goes through an os.Root.
package steps

import "github.com/rootfsctl/rootfsctl/engine"

// Register adds every built-in step type to reg.
func Register(reg *engine.Registry) {
	engine.Register(reg, "run", "Run a command.", runDoc, newRun)
	engine.Register(reg, "file", "Write a file with the given content and mode.", fileDoc, newFile)
}
