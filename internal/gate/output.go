package gate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the evaluation as a table: check, query, value,
// threshold, status, why. Queries longer than maxQuery characters are cut
// (0: never); the JSON output has them whole.
func WriteTable(w io.Writer, e Evaluation, maxQuery int) error {
	target := "node " + e.Node
	switch {
	case e.Node == "" && e.NodeGroup != "":
		target = "nodegroup " + e.NodeGroup
	case e.Node == "":
		target = "node (none)"
	}
	fmt.Fprintf(w, "verdict %s  %s  at %s  %d queries in %s", e.Verdict, target, e.Time.UTC().Format("2006-01-02T15:04:05Z"), e.Queries, e.Duration.Round(1e6))
	if e.Consecutive > 0 {
		fmt.Fprintf(w, "  %d consecutive passing", e.Consecutive)
	}
	fmt.Fprintln(w)
	if e.Note != "" {
		fmt.Fprintf(w, "note: %s\n", e.Note)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tQUERY\tVALUE\tTHRESHOLD\tSTATUS\tWHY")
	for _, c := range e.Checks {
		q := c.Query
		if maxQuery > 0 && len(q) > maxQuery {
			q = q[:maxQuery-3] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, dash(q), dash(c.Value), dash(c.Threshold), c.Status, dash(oneLine(c.Why)))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// WriteJSON writes the evaluation as one JSON object with its reasons.
func WriteJSON(w io.Writer, e Evaluation) error {
	out := struct {
		Evaluation
		Passed  bool     `json:"passed"`
		Reasons []string `json:"reasons"`
	}{e, e.Passed(), e.Reasons()}
	if out.Reasons == nil {
		out.Reasons = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
