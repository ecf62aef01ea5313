// Package schema holds the committed JSON Schema of rootfsctl plans,
// plan.schema.json, for editors (yaml-language-server) and other tools.
//
// The file is generated from the step types' parameter structs by
// `rootfsctl schema` (engine.Schema); a test keeps the committed copy equal
// to the generated one. Nothing here may be edited by hand.
package schema

import _ "embed"

// JSON is the committed plan.schema.json.
//
//go:embed plan.schema.json
var JSON []byte
