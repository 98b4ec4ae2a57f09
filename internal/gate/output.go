package gate

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Columns says which columns WriteTable writes.
type Columns int

const (
	// TableDefault is for people: check, status, value and why, so the
	// verdict and the reasons fit a terminal.
	TableDefault Columns = iota
	// TableWide adds each check's threshold and whole PromQL query, as
	// kubectl's -o wide.
	TableWide
)

// WriteTable writes the evaluation as a table, one row a check, with the
// columns asked; the JSON output always has the thresholds and queries.
func WriteTable(w io.Writer, e Evaluation, cols Columns) error {
	wide := cols == TableWide
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
	if wide {
		fmt.Fprintln(tw, "CHECK\tSTATUS\tVALUE\tWHY\tTHRESHOLD\tQUERY")
	} else {
		fmt.Fprintln(tw, "CHECK\tSTATUS\tVALUE\tWHY")
	}
	for _, c := range e.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s", c.Name, c.Status, dash(c.Value), dash(oneLine(c.Why)))
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s", dash(c.Threshold), dash(queryLine.Replace(c.Query)))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// queryLine keeps a query on its row without changing it otherwise (a
// policy's custom query may span lines).
var queryLine = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ")

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
