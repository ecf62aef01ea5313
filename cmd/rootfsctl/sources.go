package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/rootfsctl/rootfsctl/engine"
	"github.com/rootfsctl/rootfsctl/internal/machine"
	"github.com/rootfsctl/rootfsctl/internal/mirror"
)

// varFlags are how a command's plan is loaded: --var, --var-file and the
// ROOTFSCTL_VAR_<name> environment; and, on the commands that fetch, the
// mirror the plan's content comes from.
type varFlags struct {
	values []string
	files  []string

	withMirror     bool // the command takes --mirror
	mirror         string
	mirrorFallback bool
}

func (v *varFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&v.values, "var", nil, "set a plan variable, name=value (repeatable; later wins, and wins over --var-file)")
	cmd.Flags().StringArrayVar(&v.files, "var-file", nil, "read plan variables from a YAML mapping (repeatable; later files win)")
}

// registerMirror adds --mirror and --mirror-fallback.
func (v *varFlags) registerMirror(cmd *cobra.Command) {
	v.withMirror = true
	cmd.Flags().StringVar(&v.mirror, "mirror", "", "take the image and every artifact from this mirror: oci://REGISTRY/PREFIX or oci-layout:DIR (default: $ROOTFSCTL_MIRROR, then the host config)")
	cmd.Flags().BoolVar(&v.mirrorFallback, "mirror-fallback", false, "let an item the mirror lacks come from upstream")
}

// envVarPrefix starts the environment variables that set plan variables.
const envVarPrefix = "ROOTFSCTL_VAR_"

// maxVarFile bounds a --var-file, as plans are bounded.
const maxVarFile = 1 << 20

// overrides turns the sources into engine overrides, lowest first (the
// engine lets later ones win): the environment, then each --var-file, then
// each --var. Each is labelled with where it came from, so that messages
// can say so.
func (v *varFlags) overrides() ([]engine.VarOverride, error) {
	var out []engine.VarOverride
	env := os.Environ()
	sort.Strings(env)
	for _, kv := range env {
		name, val, _ := strings.Cut(kv, "=")
		if n, ok := strings.CutPrefix(name, envVarPrefix); ok && n != "" {
			out = append(out, engine.VarOverride{Name: n, Value: val, Origin: "$" + name, Optional: true})
		}
	}
	for _, f := range v.files {
		vars, err := readVarFile(f)
		if err != nil {
			return nil, usagef("--var-file %s", err)
		}
		out = append(out, vars...)
	}
	for _, f := range v.values {
		name, val, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, usagef("--var %q: want name=value", f)
		}
		out = append(out, engine.VarOverride{Name: name, Value: val, Origin: "--var " + name})
	}
	return out, nil
}

// readVarFile reads one YAML document: a mapping of names to scalar
// values, each name once.
func readVarFile(path string) ([]engine.VarOverride, error) {
	b, err := readBounded(path, maxVarFile)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc, extra yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil // empty file
	} else if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: want one YAML document, found another", path, extra.Line)
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d:%d: want a mapping of variable names to values", path, m.Line, m.Column)
	}
	var out []engine.VarOverride
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, val := m.Content[i], m.Content[i+1]
		if val.Kind == yaml.AliasNode {
			val = val.Alias
		}
		switch {
		case k.Kind != yaml.ScalarNode || k.Tag != "!!str" || k.Value == "":
			return nil, fmt.Errorf("%s:%d:%d: a variable name must be a non-empty string", path, k.Line, k.Column)
		case seen[k.Value] > 0:
			return nil, fmt.Errorf("%s:%d:%d: %s is set twice (first on line %d)", path, k.Line, k.Column, k.Value, seen[k.Value])
		case val.Kind != yaml.ScalarNode || val.Tag == "!!null":
			return nil, fmt.Errorf("%s:%d:%d: %s: want a string, number or boolean", path, val.Line, val.Column, k.Value)
		}
		seen[k.Value] = k.Line
		out = append(out, engine.VarOverride{Name: k.Value, Value: val.Value, Origin: fmt.Sprintf("--var-file %s:%d", path, k.Line)})
	}
	return out, nil
}

// readBounded reads a regular host file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	b, err := machine.ReadFile(nil, path, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// hostConfig is the optional host configuration file: site settings an
// operator sets once per host, below the flags and the environment.
type hostConfig struct {
	Mirror         string `yaml:"mirror"`
	MirrorFallback bool   `yaml:"mirrorFallback"`
}

// defaultHostConfig is where the host configuration lives, unless
// $ROOTFSCTL_CONFIG names another file.
const defaultHostConfig = "/etc/rootfsctl/config.yaml"

func readHostConfig() (hostConfig, string, error) {
	path := cmp.Or(os.Getenv("ROOTFSCTL_CONFIG"), defaultHostConfig)
	var c hostConfig
	b, err := readBounded(path, 64<<10)
	if errors.Is(err, os.ErrNotExist) && os.Getenv("ROOTFSCTL_CONFIG") == "" {
		return c, path, nil // optional
	}
	if err != nil {
		return c, path, fmt.Errorf("host config %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return c, path, fmt.Errorf("host config %s: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return c, path, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return c, path, fmt.Errorf("host config %s:%d:%d: want a mapping (mirror, mirrorFallback)", path, m.Line, m.Column)
	}
	keys := []string{"mirror", "mirrorFallback"}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; !slices.Contains(keys, k.Value) {
			return c, path, fmt.Errorf("host config %s:%d:%d: unknown key %q%s (keys: %s)", path, k.Line, k.Column, k.Value, engine.Suggest(k.Value, keys), strings.Join(keys, ", "))
		}
	}
	if err := m.Decode(&c); err != nil {
		return c, path, fmt.Errorf("host config %s: %v", path, err)
	}
	return c, path, nil
}

// selectMirror decides the mirror: --mirror, else $ROOTFSCTL_MIRROR, else
// the host config's; fallback likewise (--mirror-fallback, or the host
// config's mirrorFallback). It returns nil for none.
func (v *varFlags) selectMirror(a *app) (*mirror.Mirror, bool, error) {
	if !v.withMirror {
		return nil, false, nil
	}
	cfg, path, err := readHostConfig()
	if err != nil {
		return nil, false, usagef("%s", err)
	}
	raw, from := v.mirror, "--mirror"
	if raw == "" {
		raw, from = os.Getenv("ROOTFSCTL_MIRROR"), "$ROOTFSCTL_MIRROR"
	}
	if raw == "" {
		raw, from = cfg.Mirror, path+": mirror"
	}
	if raw == "" {
		if v.mirrorFallback {
			return nil, false, usagef("--mirror-fallback needs a mirror (--mirror, $ROOTFSCTL_MIRROR or %s)", path)
		}
		return nil, false, nil
	}
	d, err := mirror.ParseDest(raw)
	if err != nil {
		return nil, false, usagef("%s %v", from, err)
	}
	return &mirror.Mirror{Dest: d, Reg: a.ociRegistry()}, v.mirrorFallback || cfg.MirrorFallback, nil
}
