package engine

import (
	"encoding/json"
	"fmt"
	"io"
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
		// One row per step: the first line of the message (the summary by
		// convention); the full text is in the JSON report and the log.
		msg = firstLine(msg)
		if s.Attempts > 1 {
			msg = fmt.Sprintf("%s (after %d attempts)", msg, s.Attempts)
		}
		dur := "-"
		if s.Attempts > 0 {
			dur = time.Duration(s.Duration).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Type, s.Status, dur, msg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w, r.Summary()); err != nil {
		return err
	}
	if line := r.CriticalPathLine(); line != "" && !r.CheckOnly {
		_, err := fmt.Fprintln(w, line)
		return err
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	if r.Steps == nil {
		r.Steps = []StepResult{}
	}
	return writeJSON(w, r)
}

// WriteTable writes the preflight results as a table and a summary line.
func (r *PreflightReport) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tTARGET\tRESULT\tMESSAGE")
	for _, c := range r.Checks {
		sev := string(c.Severity)
		if c.Ignored {
			sev += " (ignored)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Target, sev, firstLine(c.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "preflight %s: %d ok, %s, %s\n", r.Status, r.Summary.OK, Plural(r.Summary.Warnings, "warning"), Plural(r.Summary.Errors, "error"))
	return err
}

// WriteJSON writes the report as indented JSON.
func (r *PreflightReport) WriteJSON(w io.Writer) error {
	if r.Checks == nil {
		r.Checks = []CheckResult{}
	}
	return writeJSON(w, r)
}

// writeJSON writes v as one indented JSON document: every JSON the engine
// renders looks the same.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "a -> b" stays readable
	return enc.Encode(v)
}
