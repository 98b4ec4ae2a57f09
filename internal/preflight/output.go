package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// severities in report order.
var severities = []Severity{Blocker, Unknown, Warning, Info}

// summary is the first line of every output.
func (r *Report) summary() string {
	verdict := "clean"
	switch r.ExitCode() {
	case ExitBlockers:
		verdict = "BLOCKED"
	case ExitUnknown:
		verdict = "UNKNOWN"
	case ExitWarnings:
		verdict = "warnings"
	}
	return fmt.Sprintf("preflight for %s: %s (%d blockers, %d unknown, %d warnings, %d info)",
		r.Target, verdict, r.Count(Blocker), r.Count(Unknown), r.Count(Warning), r.Count(Info))
}

// WriteTable writes the report as one table per severity: check, object,
// source, message (with the rule, the removing release and the replacement
// of API findings, the effect and the fix of workloads findings: see text).
func WriteTable(w io.Writer, r *Report) error {
	r.Sort()
	fmt.Fprintln(w, r.summary())
	for _, s := range severities {
		if r.Count(s) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d)\n", strings.ToUpper(string(s)), r.Count(s))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CHECK\tOBJECT\tSOURCE\tMESSAGE")
		for _, f := range r.Findings {
			if f.Severity == s {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Check, dash(f.Object), dash(f.Source), oneLine(f.text()))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// text is the message with what the message does not say already: the
// rule in front ("no-pdb: ..."), the removing release and replacement of
// API findings, and, for workloads findings, what the upgrade will do to
// the workload ("During the upgrade: ...") and what to change ("Fix: ...").
func (f Finding) text() string {
	msg := f.Message
	if f.Rule != "" && !strings.HasPrefix(msg, f.Rule+": ") {
		msg = f.Rule + ": " + msg
	}
	if f.RemovedRelease != "" && !strings.Contains(msg, "removed in "+f.RemovedRelease) {
		msg += "; removed in " + f.RemovedRelease
	}
	if f.Replacement != "" && !strings.Contains(msg, f.Replacement) {
		msg += "; use " + f.Replacement
	}
	if e := strings.TrimSuffix(f.Effect, "."); e != "" && !strings.Contains(msg, e) {
		msg += ". During the upgrade: " + e
	}
	if fix := strings.TrimSuffix(f.Fix, "."); fix != "" && !strings.Contains(msg, fix) {
		msg += ". Fix: " + fix
	}
	return msg
}

// WriteJSON writes the report as one JSON object: target_version, verdict,
// exit_code, counts and findings.
func WriteJSON(w io.Writer, r *Report) error {
	r.Sort()
	counts := map[Severity]int{}
	for _, s := range severities {
		counts[s] = r.Count(s)
	}
	findings := r.Findings
	if findings == nil {
		findings = []Finding{}
	}
	out := struct {
		Target   Version          `json:"target_version"`
		ExitCode int              `json:"exit_code"`
		Counts   map[Severity]int `json:"counts"`
		Findings []Finding        `json:"findings"`
	}{r.Target, r.ExitCode(), counts, findings}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteMarkdown writes the report as Markdown: a heading per severity and a
// table of its findings, for a ticket or a pull request.
func WriteMarkdown(w io.Writer, r *Report) error {
	r.Sort()
	fmt.Fprintf(w, "# %s\n", r.summary())
	for _, s := range severities {
		if r.Count(s) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n## %s (%d)\n\n| check | object | source | message |\n| --- | --- | --- | --- |\n", s, r.Count(s))
		for _, f := range r.Findings {
			if f.Severity == s {
				fmt.Fprintf(w, "| %s | %s | %s | %s |\n", mdCell(f.Check), mdCell(f.Object), mdCell(f.Source), mdCell(f.text()))
			}
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// mdCell writes s as one Markdown table cell: on one line, its pipes
// escaped, and its angle brackets as entities so that a path or message
// holding "<d>" is not read as HTML.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(oneLine(dash(s)))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
