package engine

import (
	"fmt"
	"io"
	"strings"
)

// WriteText writes one "file:line:col: message" line per diagnostic.
func (ds Diagnostics) WriteText(w io.Writer) error {
	for _, d := range ds {
		if _, err := fmt.Fprintln(w, d.String()); err != nil {
			return err
		}
	}
	return nil
}

// WriteGitHub writes GitHub Actions workflow commands, which annotate the
// offending lines in a pull request.
func (ds Diagnostics) WriteGitHub(w io.Writer) error {
	esc := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	prop := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
	for _, d := range ds {
		at := "file=" + prop.Replace(d.File)
		if d.Line > 0 {
			at += fmt.Sprintf(",line=%d", d.Line)
		}
		if d.Col > 0 {
			at += fmt.Sprintf(",col=%d", d.Col)
		}
		if _, err := fmt.Fprintf(w, "::error %s::%s\n", at, esc.Replace(d.Message)); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the diagnostics as one JSON array (an empty array when valid).
func (ds Diagnostics) WriteJSON(w io.Writer) error {
	if ds == nil {
		ds = Diagnostics{}
	}
	return writeJSON(w, ds)
}
