package gate

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Evaluate runs every registered check of the policy once (registry.go),
// the queries concurrently, all at the same evaluation time. The Verdict is
// GO when every check passed in this evaluation alone (Wait asks for
// several in a row), WAIT otherwise. It logs one audit record per
// evaluation.
func (g *Gate) Evaluate(ctx context.Context, node string) (Evaluation, error) {
	began := time.Now()
	at := g.cfg.Now()
	e := Evaluation{Verdict: WAIT, Node: node, Time: at}
	if node == "" {
		e.NodeGroup = g.cfg.NodeGroup
	}
	if err := ctx.Err(); err != nil {
		return e, err
	}
	s := &evalState{g: g, node: node, at: at, sem: make(chan struct{}, g.cfg.Concurrency)}
	defs := checks()
	rows := make([][]CheckResult, len(defs))
	var wg sync.WaitGroup
	for i, d := range defs {
		if d.Enabled != nil && !d.Enabled(&g.policy) {
			rows[i] = []CheckResult{skipRow(d.Name, "disabled in the policy ("+d.Switch+")")}
			continue
		}
		wg.Go(func() { rows[i] = d.Run(g, ctx, s) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return e, err
	}
	if s.stores != nil {
		e.Checks = append(e.Checks, storesRow(s.stores))
	}
	for _, r := range rows {
		e.Checks = append(e.Checks, r...)
	}
	e.Queries = s.queries
	e.Unreachable = s.unreachable
	e.Duration = time.Since(began)
	if e.Passed() {
		e.Verdict = GO
	}
	g.audit(e)
	return e, nil
}

// audit logs the evaluation as one structured record.
func (g *Gate) audit(e Evaluation) {
	statuses := make([]string, 0, len(e.Checks))
	for _, c := range e.Checks {
		statuses = append(statuses, c.Name+"="+string(c.Status))
	}
	level := slog.LevelInfo
	g.logger.LogAttrs(context.Background(), level, "gate evaluation",
		slog.String("node", e.Node),
		slog.String("nodegroup", e.NodeGroup),
		slog.String("verdict", string(e.Verdict)),
		slog.Bool("passed", e.Passed()),
		slog.Time("time", e.Time),
		slog.Duration("duration", e.Duration),
		slog.Int("queries", e.Queries),
		slog.Bool("unreachable", e.Unreachable),
		slog.String("url", g.cfg.URL),
		slog.Any("checks", statuses),
		slog.Any("reasons", e.Reasons()),
	)
}

// ---- selectors ----

// sel renders a selector of the exporter's series: name (a metric name,
// or several joined by | for a __name__ regex), the job, the policy's
// matchers and extra.
func (g *Gate) sel(names string, extra ...string) string {
	parts := []string{}
	if strings.Contains(names, "|") {
		parts = append(parts, fmt.Sprintf("__name__=~%q", names))
		names = ""
	}
	parts = append(parts, fmt.Sprintf("job=~%q", g.policy.Job))
	for _, m := range g.policy.matchers {
		parts = append(parts, m.String())
	}
	parts = append(parts, extra...)
	return names + "{" + strings.Join(parts, ", ") + "}"
}

// byName splits samples by metric name.
func byName(samples []sample) map[string][]sample {
	out := map[string][]sample{}
	for _, s := range samples {
		out[s.labels["__name__"]] = append(out[s.labels["__name__"]], s)
	}
	return out
}

// perLabel reduces samples to one value per value of label: the worst
// (lowest for min, highest for max), NaN winning, so that two exporters'
// copies can only make the verdict stricter.
func perLabel(samples []sample, label string, highIsWorse bool) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		k := s.labels[label]
		old, ok := out[k]
		switch {
		case !ok, isNaN(s.value):
			out[k] = s.value
		case isNaN(old):
		case highIsWorse && s.value > old, !highIsWorse && s.value < old:
			out[k] = s.value
		}
	}
	return out
}

func isNaN(f float64) bool { return f != f }

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// list renders at most 5 items and how many more.
func list(items []string) string {
	sort.Strings(items)
	if len(items) > 5 {
		return strings.Join(items[:5], ", ") + fmt.Sprintf(" and %d more", len(items)-5)
	}
	return strings.Join(items, ", ")
}

// unknownRows marks every named row UNKNOWN with err.
func unknownRows(query string, err error, names ...string) []CheckResult {
	out := make([]CheckResult, 0, len(names))
	for _, n := range names {
		out = append(out, CheckResult{Name: n, Query: query, Status: Unknown, Why: err.Error()})
	}
	return out
}

func skipRow(name, why string) CheckResult {
	return CheckResult{Name: name, Status: Skip, Why: why}
}

func withNote(r CheckResult, note string) CheckResult {
	if note == "" {
		return r
	}
	if r.Why == "" {
		r.Why = note
	} else {
		r.Why += "; " + note
	}
	return r
}

// promDuration renders d as PromQL accepts it (whole seconds at least).
func promDuration(d time.Duration) string {
	if d < time.Second {
		d = time.Second
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

func describeSamples(ss []sample) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, describeSample(s))
	}
	return out
}

func describeSample(s sample) string {
	keys := make([]string, 0, len(s.labels))
	for k := range s.labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, s.labels[k]))
	}
	return "{" + strings.Join(parts, ", ") + "} " + fmtNum(s.value)
}
