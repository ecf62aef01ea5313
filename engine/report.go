package engine

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the report as an aligned table followed by a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tTYPE\tSTATUS\tDURATION\tMESSAGE")
	for _, s := range r.Steps {
		msg := s.Message
		if s.Error != "" {
			msg = s.Error
			if s.Message != "" && s.Status != StatusFailed {
				msg = s.Message + ": " + s.Error
			}
		}
		if s.Attempts > 1 {
			msg = fmt.Sprintf("%s (%d attempts)", msg, s.Attempts)
		}
		dur := "-"
		if s.Attempts > 0 {
			dur = s.Duration.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Type, s.Status, dur, firstLine(msg))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, r.Summary())
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// firstLine keeps tables one row per step; the full text is in the JSON
// report and the log.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
