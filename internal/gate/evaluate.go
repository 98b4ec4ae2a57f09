package gate

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// check is one section of the policy: it runs its queries and returns its
// result rows.
type check func(ctx context.Context, s *evalState) []CheckResult

// Evaluate runs every check of the policy once, the queries concurrently,
// all at the same evaluation time. The Verdict is GO when every check
// passed in this evaluation alone (Wait asks for several in a row), WAIT
// otherwise. It logs one audit record per evaluation.
func (g *Gate) Evaluate(ctx context.Context, node string) (Evaluation, error) {
	began := time.Now()
	at := g.cfg.Now()
	e := Evaluation{Verdict: WAIT, Node: node, Time: at}
	if err := ctx.Err(); err != nil {
		return e, err
	}
	s := &evalState{g: g, node: node, at: at, sem: make(chan struct{}, g.cfg.Concurrency)}
	checks := []check{g.checkMonitoring, g.checkAlerts, g.checkNodes, g.checkDrain, g.checkCapacity}
	for _, c := range g.policy.Custom {
		checks = append(checks, g.customCheck(c))
	}
	rows := make([][]CheckResult, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { rows[i] = c(ctx, s) })
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

func storesRow(v *storeView) CheckResult {
	healthy := 0
	for _, st := range v.stores {
		if st.healthy() {
			healthy++
		}
	}
	r := CheckResult{
		Name: "monitoring/stores", Query: "GET /api/v1/stores",
		Value:     fmt.Sprintf("%d of %d stores healthy", healthy, len(v.stores)),
		Threshold: "every missing store has a live replica peer",
		Status:    Pass, Why: v.note,
	}
	if v.problem != nil {
		r.Status, r.Why = Unknown, v.problem.Error()
	}
	return r
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

// ---- monitoring ----

var awsCollectors = map[string]bool{"cni": true, "awsquota": true}

func (g *Gate) checkMonitoring(ctx context.Context, s *evalState) []CheckResult {
	q := g.sel("up|upgradeguard_collector_success|upgradeguard_aws_refresh_last_success_timestamp_seconds")
	res, err := s.query(ctx, q)
	if err != nil {
		return unknownRows(q, err, "monitoring/up", "monitoring/collectors", "monitoring/aws-fresh")
	}
	m := byName(res.samples)
	var out []CheckResult

	// up
	up := CheckResult{Name: "monitoring/up", Query: q, Threshold: "every exporter target up == 1"}
	var down, nan []string
	for _, smp := range m["up"] {
		inst := smp.labels["instance"]
		switch {
		case isNaN(smp.value):
			nan = append(nan, inst)
		case smp.value != 1:
			down = append(down, inst)
		}
	}
	switch {
	case len(m["up"]) == 0:
		up.Status, up.Value = Unknown, "no series"
		up.Why = fmt.Sprintf("no up series for job=~%q: Prometheus does not scrape the exporter, or the query reaches no Prometheus", g.policy.Job)
	case len(down) > 0:
		up.Status, up.Value = Fail, fmt.Sprintf("%d of %d down", len(down), len(m["up"]))
		up.Why = "exporter target down: " + list(down)
	case len(nan) > 0:
		up.Status, up.Value, up.Why = Unknown, "NaN", "up is NaN for "+list(nan)
	default:
		up.Status, up.Value = Pass, fmt.Sprintf("%d up", len(m["up"]))
	}
	out = append(out, withNote(up, res.note))

	// collectors
	col := CheckResult{Name: "monitoring/collectors", Query: q,
		Threshold: "upgradeguard_collector_success == 1 for every collector; present for " + strings.Join(g.policy.Monitoring.Collectors, ", ")}
	success := perLabel(m["upgradeguard_collector_success"], "collector", false)
	var failed, missing []string
	nan = nil
	for c, v := range success {
		switch {
		case isNaN(v):
			nan = append(nan, c)
		case v != 1:
			failed = append(failed, c)
		}
	}
	for _, c := range g.policy.Monitoring.Collectors {
		if _, ok := success[c]; !ok {
			missing = append(missing, c)
		}
	}
	names := make([]string, 0, len(success))
	for c := range success {
		names = append(names, c)
	}
	col.Value = "reporting: " + list(names)
	switch {
	case len(success) == 0:
		col.Status, col.Value = Unknown, "no series"
		col.Why = "no upgradeguard_collector_success series: the exporter's metrics are not in the monitoring"
	case len(failed) > 0:
		col.Status, col.Why = Fail, "collectors failing (serving stale data): "+list(failed)
	case len(missing) > 0:
		col.Status, col.Why = Unknown, "required collectors not reporting: "+list(missing)
	case len(nan) > 0:
		col.Status, col.Why = Unknown, "collector success is NaN for "+list(nan)
	default:
		col.Status = Pass
	}
	out = append(out, col)

	// AWS freshness: each refresher (collector label cni, awsquota_usage,
	// awsquota_limits, awsquota_report) per region.
	maxAge := time.Duration(*g.policy.Monitoring.AWSMaxAge)
	quotaMaxAge := time.Duration(*g.policy.Monitoring.AWSQuotaMaxAge)
	limitFor := func(refresher string) time.Duration {
		if refresher == "awsquota_limits" || refresher == "awsquota_report" {
			return quotaMaxAge
		}
		return maxAge
	}
	var running []string
	for c := range success {
		if awsCollectors[c] {
			running = append(running, c)
		}
	}
	sort.Strings(running)
	switch {
	case maxAge == 0:
		out = append(out, skipRow("monitoring/aws-fresh", "monitoring.aws_max_age is 0"))
	case len(success) == 0:
		out = append(out, CheckResult{Name: "monitoring/aws-fresh", Query: q, Status: Unknown, Why: "no collector reports, so which AWS collectors run is unknown"})
	case len(running) == 0:
		out = append(out, skipRow("monitoring/aws-fresh", "the exporter runs no AWS collector (cni, awsquota)"))
	default:
		aws := CheckResult{Name: "monitoring/aws-fresh", Query: q,
			Threshold: fmt.Sprintf("last AWS refresh at most %s ago (quota limits and report %s)", maxAge, quotaMaxAge)}
		type refresh struct {
			refresher string
			age       float64
		}
		oldest := map[string]refresh{} // refresher/region -> oldest
		for _, smp := range m["upgradeguard_aws_refresh_last_success_timestamp_seconds"] {
			k := smp.labels["collector"] + "/" + smp.labels["region"]
			age := float64(s.at.UnixMilli())/1000 - smp.value
			if old, ok := oldest[k]; !ok || isNaN(age) || age > old.age {
				oldest[k] = refresh{smp.labels["collector"], age}
			}
		}
		var stale, unknown, ages []string
		for _, c := range running {
			seen := false
			for k, r := range oldest {
				if r.refresher != c && !strings.HasPrefix(r.refresher, c+"_") {
					continue
				}
				seen = true
				switch {
				case isNaN(r.age):
					unknown = append(unknown, k+" NaN")
				case r.age > limitFor(r.refresher).Seconds():
					stale = append(stale, fmt.Sprintf("%s %s ago", k, time.Duration(r.age*float64(time.Second)).Round(time.Second)))
				}
			}
			if !seen {
				unknown = append(unknown, c+" has no successful refresh yet")
			}
		}
		for k, r := range oldest {
			ages = append(ages, fmt.Sprintf("%s %ss", k, fmtNum(float64(int(r.age)))))
		}
		aws.Value = list(ages)
		switch {
		case len(stale) > 0:
			aws.Status, aws.Why = Fail, "AWS data stale: "+list(stale)
		case len(unknown) > 0:
			aws.Status, aws.Why = Unknown, list(unknown)
		default:
			aws.Status = Pass
		}
		out = append(out, aws)
	}
	return out
}

// ---- alerts ----

func (g *Gate) checkAlerts(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Alerts
	wantWatchdog := g.policy.Monitoring.Watchdog != ""
	if !enabled(p.Enabled) && !wantWatchdog {
		return []CheckResult{skipRow("alerts", "disabled in the policy")}
	}
	parts := []string{`alertstate="firing"`}
	if p.Pending {
		parts = []string{`alertstate=~"firing|pending"`}
	}
	for _, m := range g.policy.matchers {
		parts = append(parts, m.String())
	}
	q := "ALERTS{" + strings.Join(parts, ", ") + "}"
	res, err := s.query(ctx, q)
	if err != nil {
		names := []string{"alerts"}
		if wantWatchdog {
			names = append(names, "monitoring/watchdog")
		}
		return unknownRows(q, err, names...)
	}
	var out []CheckResult
	if wantWatchdog {
		wd := CheckResult{Name: "monitoring/watchdog", Query: q, Threshold: g.policy.Monitoring.Watchdog + " firing"}
		for _, smp := range res.samples {
			if smp.labels["alertname"] == g.policy.Monitoring.Watchdog && smp.labels["alertstate"] == "firing" {
				wd.Status, wd.Value = Pass, "firing"
			}
		}
		if wd.Status == "" {
			wd.Status, wd.Value = Unknown, "absent"
			wd.Why = fmt.Sprintf("the always-firing alert %s is absent: rule evaluation or the query path is broken, so an empty ALERTS proves nothing", g.policy.Monitoring.Watchdog)
		}
		out = append(out, wd)
	}
	if !enabled(p.Enabled) {
		return append([]CheckResult{skipRow("alerts", "disabled in the policy")}, out...)
	}
	ignore := map[string]bool{}
	for _, n := range p.Ignore {
		ignore[n] = true
	}
	baseline := g.cfg.Baseline.severities(g.cfg.ReplicaLabels)
	var blocking, tolerated []string
	matching := 0
	seen := map[string]bool{}
	for _, smp := range res.samples {
		l := smp.labels
		if ignore[l["alertname"]] {
			continue
		}
		ok := true
		for _, m := range p.selector {
			if !m.matches(l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		key := alertKey(l, g.cfg.ReplicaLabels) + l["alertstate"]
		if seen[key] {
			continue // the same alert from two replicas without deduplication
		}
		seen[key] = true
		matching++
		desc := describeAlert(l)
		if sev, inBaseline := baseline[alertKey(l, g.cfg.ReplicaLabels)]; inBaseline {
			if sev == l["severity"] {
				tolerated = append(tolerated, desc)
				continue
			}
			desc += fmt.Sprintf(" (severity %q in the baseline, now %q)", sev, l["severity"])
		}
		blocking = append(blocking, desc)
	}
	ignored := "none"
	if len(p.Ignore) > 0 {
		ignored = strings.Join(p.Ignore, ", ")
	}
	r := CheckResult{Name: "alerts", Query: q,
		Value:     fmt.Sprintf("%d matching, %d blocking", matching, len(blocking)),
		Threshold: fmt.Sprintf("no alert matching {%s} (ignored: %s)", p.Selector, ignored),
	}
	if len(blocking) > 0 {
		r.Status, r.Why = Fail, list(blocking)
	} else {
		r.Status = Pass
	}
	if len(tolerated) > 0 {
		r = withNote(r, "firing since the baseline, not blocking: "+list(tolerated))
	}
	out = append([]CheckResult{withNote(r, res.note)}, out...)
	return out
}

func describeAlert(l map[string]string) string {
	var extra []string
	for _, k := range []string{"severity", "alertstate", "node", "namespace", "pdb", "zone"} {
		if v := l[k]; v != "" && !(k == "alertstate" && v == "firing") {
			extra = append(extra, k+"="+v)
		}
	}
	return l["alertname"] + "{" + strings.Join(extra, ",") + "}"
}

// ---- nodes ----

func (g *Gate) checkNodes(ctx context.Context, s *evalState) []CheckResult {
	if !enabled(g.policy.Nodes.Enabled) {
		return []CheckResult{skipRow("nodes", "disabled in the policy")}
	}
	q := g.sel("upgradeguard_node_ready|upgradeguard_node_heartbeat_age_seconds|upgradeguard_node_lease_duration_seconds|upgradeguard_node_created_timestamp_seconds")
	window := time.Duration(*g.policy.Nodes.TransitionsWindow)
	var qt string
	var tres result
	var terr error
	var wg sync.WaitGroup
	if window > 0 {
		qt = fmt.Sprintf("increase(%s[%s])", g.sel("upgradeguard_node_ready_transitions_total"), promDuration(window))
		wg.Go(func() { tres, terr = s.query(ctx, qt) })
	}
	res, err := s.query(ctx, q)
	wg.Wait()
	if err != nil {
		rows := unknownRows(q, err, "nodes/ready", "nodes/heartbeat")
		if window > 0 {
			rows = append(rows, CheckResult{Name: "nodes/transitions", Query: qt, Status: Unknown, Why: "no node list: " + err.Error()})
		}
		return rows
	}
	m := byName(res.samples)
	ready := perLabel(m["upgradeguard_node_ready"], "node", false)
	age := perLabel(m["upgradeguard_node_heartbeat_age_seconds"], "node", true)
	lease := perLabel(m["upgradeguard_node_lease_duration_seconds"], "node", false)
	created := perLabel(m["upgradeguard_node_created_timestamp_seconds"], "node", true)
	var out []CheckResult

	r := CheckResult{Name: "nodes/ready", Query: q, Threshold: "upgradeguard_node_ready == 1 for every node"}
	var notReady, nan []string
	for n, v := range ready {
		switch {
		case isNaN(v):
			nan = append(nan, n)
		case v != 1:
			notReady = append(notReady, n)
		}
	}
	// A node known from its heartbeat but without a readiness series.
	for n := range age {
		if _, ok := ready[n]; !ok {
			nan = append(nan, n+" (no readiness series)")
		}
	}
	r.Value = fmt.Sprintf("%d of %d ready", len(ready)-len(notReady)-countNaN(ready), len(ready))
	switch {
	case len(ready) == 0:
		r.Status, r.Value, r.Why = Unknown, "no series", "no upgradeguard_node_ready series: the nodes collector is off or not scraped"
	case len(notReady) > 0:
		r.Status, r.Why = Fail, "not ready: "+list(notReady)
	case len(nan) > 0:
		r.Status, r.Why = Unknown, "readiness unknown: "+list(nan)
	default:
		r.Status = Pass
	}
	out = append(out, withNote(r, res.note))

	h := CheckResult{Name: "nodes/heartbeat", Query: q, Threshold: "heartbeat age <= lease duration"}
	var late, unknown []string
	worst := -1.0
	for n := range ready {
		a, okA := age[n]
		d, okD := lease[n]
		switch {
		case !okA:
			unknown = append(unknown, n+" has no Lease heartbeat series")
		case !okD:
			unknown = append(unknown, n+" has no lease duration series")
		case isNaN(a) || isNaN(d):
			unknown = append(unknown, n+" NaN")
		case a > d:
			late = append(late, fmt.Sprintf("%s %ss old (lease %ss)", n, fmtNum(float64(int(a))), fmtNum(d)))
		}
		if okA && !isNaN(a) && a > worst {
			worst = a
		}
	}
	if worst >= 0 {
		h.Value = fmt.Sprintf("oldest %ss", fmtNum(float64(int(worst))))
	}
	switch {
	case len(ready) == 0:
		h.Status, h.Why = Unknown, "no nodes to check"
	case len(late) > 0:
		h.Status, h.Why = Fail, "heartbeat overdue: "+list(late)
	case len(unknown) > 0:
		h.Status, h.Why = Unknown, list(unknown)
	default:
		h.Status = Pass
	}
	out = append(out, h)

	if window <= 0 {
		return append(out, skipRow("nodes/transitions", "nodes.transitions_window is 0"))
	}
	t := CheckResult{Name: "nodes/transitions", Query: qt, Threshold: "no Ready transitions in the last " + promDuration(window) + " (a node created since: only its first Ready)"}
	if terr != nil {
		t.Status, t.Why = Unknown, terr.Error()
		return append(out, t)
	}
	inc := perLabel(tres.samples, "node", true)
	var flapping []string
	unknown = nil
	since := float64(s.at.Add(-window).UnixMilli()) / 1000
	for n := range ready {
		v, ok := inc[n]
		// A node created within the window has had one transition, its
		// first Ready; increase() extrapolates that one to between 1 and
		// 2, and a flap after it to 2 or more.
		c, okC := created[n]
		young := okC && !isNaN(c) && c > since
		switch {
		case !ok:
			unknown = append(unknown, n+" (no transitions counter over the window yet)")
		case isNaN(v):
			unknown = append(unknown, n+" NaN")
		case young && v >= 2, !young && v > 0:
			flapping = append(flapping, fmt.Sprintf("%s (%s)", n, fmtNum(v)))
		}
	}
	t.Value = fmt.Sprintf("%d nodes changed readiness", len(flapping))
	switch {
	case len(ready) == 0:
		t.Status, t.Why = Unknown, "no nodes to check"
	case len(flapping) > 0:
		t.Status, t.Why = Fail, "readiness changed: "+list(flapping)
	case len(unknown) > 0:
		t.Status, t.Why = Unknown, list(unknown)
	default:
		t.Status = Pass
	}
	return append(out, withNote(t, tres.note))
}

func countNaN(m map[string]float64) int {
	n := 0
	for _, v := range m {
		if isNaN(v) {
			n++
		}
	}
	return n
}

// promDuration renders d as PromQL accepts it (whole seconds at least).
func promDuration(d time.Duration) string {
	if d < time.Second {
		d = time.Second
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// ---- drain ----

func (g *Gate) checkDrain(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Drain
	if !enabled(p.Enabled) {
		return []CheckResult{skipRow("drain", "disabled in the policy")}
	}
	if s.node == "" {
		return []CheckResult{skipRow("drain", "no node given (--node)")}
	}
	q := g.sel("upgradeguard_node_drainable|upgradeguard_node_evictable_pods|upgradeguard_node_unmanaged_pods|upgradeguard_node_local_storage_pods|upgradeguard_node_drain_blocked_pods",
		fmt.Sprintf("node=%q", s.node))
	res, err := s.query(ctx, q)
	if err != nil {
		return unknownRows(q, err, "drain/pdb", "drain/unmanaged", "drain/local-storage")
	}
	m := byName(res.samples)
	one := func(name string, highIsWorse bool) (float64, bool) {
		v, ok := perLabel(m[name], "node", highIsWorse)[s.node]
		return v, ok
	}
	var out []CheckResult
	d := CheckResult{Name: "drain/pdb", Query: q, Threshold: "upgradeguard_node_drainable == 1"}
	drainable, ok := one("upgradeguard_node_drainable", false)
	evictable, okE := one("upgradeguard_node_evictable_pods", true)
	switch {
	case !ok:
		d.Status, d.Value = Unknown, "no series"
		d.Why = fmt.Sprintf("no upgradeguard_node_drainable for node %q: the node is unknown to the exporter or its pdb collector is off", s.node)
	case isNaN(drainable):
		d.Status, d.Value, d.Why = Unknown, "NaN", "drainable is NaN"
	case drainable != 1:
		d = g.judgeBlockedDrain(ctx, s, d, m["upgradeguard_node_drain_blocked_pods"])
	default:
		d.Status, d.Value = Pass, "drainable"
		if okE {
			d.Value += fmt.Sprintf(", %s pods to evict", fmtNum(evictable))
		}
	}
	out = append(out, withNote(d, res.note))
	for _, c := range []struct {
		row, metric, what string
		allowed           bool
		option            string
	}{
		{"drain/unmanaged", "upgradeguard_node_unmanaged_pods", "pods without a controller (a drain deletes them for good)", p.AllowUnmanagedPods, "drain.allow_unmanaged_pods"},
		{"drain/local-storage", "upgradeguard_node_local_storage_pods", "pods with emptyDir data (a drain loses it)", p.AllowLocalStoragePods, "drain.allow_local_storage_pods"},
	} {
		r := CheckResult{Name: c.row, Query: q, Threshold: "0"}
		if c.allowed {
			r.Threshold = "any (" + c.option + ")"
		}
		v, ok := one(c.metric, true)
		switch {
		case !ok:
			r.Status, r.Value, r.Why = Unknown, "no series", fmt.Sprintf("no %s for node %q", c.metric, s.node)
		case isNaN(v):
			r.Status, r.Value, r.Why = Unknown, "NaN", c.metric+" is NaN"
		case v > 0 && !c.allowed:
			r.Status, r.Value, r.Why = Fail, fmtNum(v), fmt.Sprintf("%s %s; set %s to accept", fmtNum(v), c.what, c.option)
		default:
			r.Status, r.Value = Pass, fmtNum(v)
		}
		out = append(out, r)
	}
	return out
}

// judgeBlockedDrain decides a node that cannot be drained in one go. With
// drain.all_at_once it fails. Otherwise it passes when every PDB that
// blocks some of the node's pods allows at least one disruption now: the
// drain (the roll's, or kubectl's) evicts what it can, retries the rest,
// and the PDB lets the next pod go once the first is replaced elsewhere. A
// PDB at 0 disruptions, a block with no PDB named (a pod under two PDBs, a
// PDB whose status lags), or a PDB whose allowance is unknown fails or is
// UNKNOWN: that drain would not start.
func (g *Gate) judgeBlockedDrain(ctx context.Context, s *evalState, d CheckResult, blocked []sample) CheckResult {
	type key struct{ ns, pdb string }
	var blockers []key
	pods := map[key]float64{}
	for _, smp := range blocked {
		k := key{smp.labels["namespace"], smp.labels["pdb"]}
		if _, seen := pods[k]; !seen {
			blockers = append(blockers, k)
		}
		pods[k] += smp.value
	}
	describe := func(k key) string { return fmt.Sprintf("%s/%s blocks %s pods", k.ns, k.pdb, fmtNum(pods[k])) }
	var all []string
	for _, k := range blockers {
		all = append(all, describe(k))
	}
	d.Status, d.Value = Fail, "not drainable"
	d.Why = "a PodDisruptionBudget refuses evictions now"
	if len(all) > 0 {
		d.Why += ": " + list(all)
	}
	if g.policy.Drain.AllAtOnce || len(blockers) == 0 {
		return d
	}
	q := g.sel("upgradeguard_pdb_disruptions_allowed")
	res, err := s.query(ctx, q)
	if err != nil {
		d.Status, d.Value = Unknown, "query failed"
		d.Why = "the node cannot be drained in one go and the disruptions its PDBs allow are unknown: " + err.Error()
		return d
	}
	allowed := map[key]float64{}
	known := map[key]bool{}
	for _, smp := range res.samples {
		k := key{smp.labels["namespace"], smp.labels["pdb"]}
		if !known[k] || smp.value < allowed[k] {
			allowed[k], known[k] = smp.value, true
		}
	}
	var stuck, unknown, steps []string
	for _, k := range blockers {
		switch v := allowed[k]; {
		case !known[k] || isNaN(v):
			unknown = append(unknown, k.ns+"/"+k.pdb)
		case v < 1:
			stuck = append(stuck, describe(k)+" and allows 0 disruptions")
		default:
			steps = append(steps, fmt.Sprintf("%s/%s allows %s at a time, %s pods wait", k.ns, k.pdb, fmtNum(v), fmtNum(pods[k])))
		}
	}
	switch {
	case len(stuck) > 0:
		d.Why = "a PodDisruptionBudget refuses evictions now: " + list(stuck)
	case len(unknown) > 0:
		d.Status, d.Value = Unknown, "not drainable in one go"
		d.Why = "no upgradeguard_pdb_disruptions_allowed for " + list(unknown) + ", so whether the drain can progress is unknown"
	default:
		d.Status, d.Value = Pass, "drains in steps"
		d.Why = list(steps) + " (drain.all_at_once: false)"
	}
	return d
}

// ---- capacity ----

func (g *Gate) checkCapacity(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Capacity
	var out []CheckResult
	var wg sync.WaitGroup
	var ips, quotas []CheckResult
	if enabled(p.IPs) {
		wg.Go(func() { ips = g.checkIPs(ctx, s) })
	} else {
		ips = []CheckResult{skipRow("capacity/ips", "disabled in the policy")}
	}
	if enabled(p.Quotas) {
		wg.Go(func() { quotas = g.checkQuotas(ctx, s) })
	} else {
		quotas = []CheckResult{skipRow("capacity/quotas", "disabled in the policy")}
	}
	wg.Wait()
	out = append(out, ips...)
	return append(out, quotas...)
}

func (g *Gate) checkIPs(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Capacity
	names := "upgradeguard_zone_available_ips|upgradeguard_aws_asg_surge_ips"
	var extra []string
	if s.node != "" {
		names += "|upgradeguard_node_info"
		extra = append(extra, fmt.Sprintf("node=~%q", "|"+regexp.QuoteMeta(s.node)))
	}
	q := g.sel(names, extra...)
	r := CheckResult{Name: "capacity/ips", Query: q}
	res, err := s.query(ctx, q)
	if err != nil {
		r.Status, r.Why = Unknown, err.Error()
		return []CheckResult{r}
	}
	r = withNote(r, res.note)
	m := byName(res.samples)
	need := float64(p.IPsNeeded)
	needWhy := "capacity.ips_needed"
	if p.IPsNeeded == 0 {
		surge := m["upgradeguard_aws_asg_surge_ips"]
		if len(surge) == 0 {
			r.Status, r.Why = Unknown, "no upgradeguard_aws_asg_surge_ips series (is the awsquota collector on?), so what a replacement needs is unknown; set capacity.ips_needed or turn capacity.ips off"
			return []CheckResult{r}
		}
		need = -1
		for _, smp := range surge {
			if isNaN(smp.value) {
				r.Status, r.Why = Unknown, "surge addresses of group "+smp.labels["asg"]+" are NaN"
				return []CheckResult{r}
			}
			if smp.value > need {
				need, needWhy = smp.value, "largest surge of group "+smp.labels["asg"]
			}
		}
	}
	need += float64(p.ExtraIPs)
	r.Threshold = fmt.Sprintf(">= %s free (%s + %d extra)", fmtNum(need), needWhy, p.ExtraIPs)
	free := perLabel(m["upgradeguard_zone_available_ips"], "zone", false)
	zones := make([]string, 0, len(free))
	for z := range free {
		zones = append(zones, z)
	}
	if s.node != "" {
		var zone string
		for _, smp := range m["upgradeguard_node_info"] {
			zone = smp.labels["zone"]
		}
		if zone == "" {
			r.Status, r.Why = Unknown, fmt.Sprintf("the zone of node %q is unknown (no upgradeguard_node_info with a zone)", s.node)
			return []CheckResult{r}
		}
		zones = []string{zone}
	} else if len(zones) == 0 {
		r.Status, r.Why = Unknown, "no upgradeguard_zone_available_ips series (is the cni collector on?)"
		return []CheckResult{r}
	}
	sort.Strings(zones)
	var short, unknown, values []string
	for _, z := range zones {
		v, ok := free[z]
		switch {
		case !ok:
			unknown = append(unknown, fmt.Sprintf("no upgradeguard_zone_available_ips for zone %q", z))
		case isNaN(v):
			unknown = append(unknown, z+" NaN")
		case v < need:
			short = append(short, fmt.Sprintf("%s has %s free", z, fmtNum(v)))
		}
		if ok {
			values = append(values, fmt.Sprintf("%s: %s", z, fmtNum(v)))
		}
	}
	r.Value = list(values)
	switch {
	case len(short) > 0:
		r.Status, r.Why = Fail, "not enough free addresses for a replacement node: "+list(short)
	case len(unknown) > 0:
		r.Status, r.Why = Unknown, list(unknown)
	default:
		r.Status = Pass
	}
	return []CheckResult{r}
}

func (g *Gate) checkQuotas(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Capacity
	q := g.sel("upgradeguard_aws_quota_limit|upgradeguard_aws_quota_usage|upgradeguard_aws_quota_surge_demand|upgradeguard_aws_surge_unresolved_groups")
	r := CheckResult{Name: "capacity/quotas", Query: q,
		Threshold: fmt.Sprintf("usage + surge demand <= %s x limit", fmtNum(p.MaxQuotaUtilization))}
	res, err := s.query(ctx, q)
	if err != nil {
		r.Status, r.Why = Unknown, err.Error()
		return []CheckResult{r}
	}
	r = withNote(r, res.note)
	type quota struct {
		name                string
		limit, usage, surge []float64
	}
	quotas := map[string]*quota{}
	var unresolved []string
	for _, smp := range res.samples {
		l := smp.labels
		if l["__name__"] == "upgradeguard_aws_surge_unresolved_groups" {
			if isNaN(smp.value) || smp.value > 0 {
				unresolved = append(unresolved, fmt.Sprintf("%s/%s: %s groups", l["account"], l["region"], fmtNum(smp.value)))
			}
			continue
		}
		k := fmt.Sprintf("%s %s (%s) in %s/%s", l["service"], l["quota_code"], l["quota_name"], l["account"], l["region"])
		qt := quotas[k]
		if qt == nil {
			qt = &quota{name: k}
			quotas[k] = qt
		}
		switch l["__name__"] {
		case "upgradeguard_aws_quota_limit":
			qt.limit = append(qt.limit, smp.value)
		case "upgradeguard_aws_quota_usage":
			qt.usage = append(qt.usage, smp.value)
		case "upgradeguard_aws_quota_surge_demand":
			qt.surge = append(qt.surge, smp.value)
		}
	}
	worst := func(vs []float64, high bool) float64 {
		w := vs[0]
		for _, v := range vs[1:] {
			if isNaN(v) || (high && v > w) || (!high && v < w) {
				w = v
			}
		}
		return w
	}
	var over, unknown []string
	withDemand, maxShare, surgeSeries := 0, 0.0, 0
	for _, qt := range quotas {
		if len(qt.surge) == 0 {
			continue
		}
		surgeSeries++
		surge := worst(qt.surge, true)
		if !isNaN(surge) && surge <= 0 {
			continue
		}
		withDemand++
		switch {
		case len(qt.limit) == 0:
			unknown = append(unknown, qt.name+": no limit")
		case len(qt.usage) == 0:
			unknown = append(unknown, qt.name+": no usage")
		default:
			limit, usage := worst(qt.limit, false), worst(qt.usage, true)
			if isNaN(limit) || isNaN(usage) || isNaN(surge) {
				unknown = append(unknown, qt.name+": NaN")
				continue
			}
			if limit > 0 {
				maxShare = max(maxShare, (usage+surge)/limit)
			}
			if usage+surge > limit*p.MaxQuotaUtilization {
				over = append(over, fmt.Sprintf("%s: usage %s + surge %s > %s of limit %s", qt.name, fmtNum(usage), fmtNum(surge), fmtNum(p.MaxQuotaUtilization), fmtNum(limit)))
			}
		}
	}
	r.Value = fmt.Sprintf("%d quotas with surge demand, highest at %.0f%% with the surge", withDemand, maxShare*100)
	switch {
	case len(quotas) == 0:
		r.Status, r.Value, r.Why = Unknown, "no series", "no upgradeguard_aws_quota_* series (is the awsquota collector on?); turn capacity.quotas off if AWS is not watched"
	case surgeSeries == 0:
		r.Status, r.Why = Unknown, "no upgradeguard_aws_quota_surge_demand series: the surge of the cluster's Auto Scaling groups is unknown (none found?)"
	case len(over) > 0:
		r.Status, r.Why = Fail, "AWS quota would be exceeded by the surge: "+list(over)
	case len(unknown) > 0:
		r.Status, r.Why = Unknown, list(unknown)
	case len(unresolved) > 0 && !p.AllowUnresolvedGroups:
		r.Status, r.Why = Unknown, "the surge demand is only a lower bound (groups with unknown instance types: "+list(unresolved)+"); set capacity.allow_unresolved_groups to accept"
	default:
		r.Status = Pass
	}
	return []CheckResult{r}
}

// ---- custom ----

func (g *Gate) customCheck(c CustomCheck) check {
	return func(ctx context.Context, s *evalState) []CheckResult {
		name := "custom/" + c.Name
		q := c.Query
		if strings.Contains(q, "$node") {
			if s.node == "" {
				return []CheckResult{skipRow(name, "the query uses $node and no node was given")}
			}
			q = strings.ReplaceAll(q, "$node", s.node)
		}
		r := CheckResult{Name: name, Query: q}
		var conds []string
		if c.Empty != nil {
			if *c.Empty {
				conds = append(conds, "empty")
			} else {
				conds = append(conds, "not empty")
			}
		}
		if c.Min != nil {
			conds = append(conds, ">= "+fmtNum(*c.Min))
		}
		if c.Max != nil {
			conds = append(conds, "<= "+fmtNum(*c.Max))
		}
		r.Threshold = strings.Join(conds, ", ")
		res, err := s.query(ctx, q)
		if err != nil {
			r.Status, r.Why = Unknown, err.Error()
			return []CheckResult{r}
		}
		r = withNote(r, res.note)
		n := len(res.samples)
		r.Value = fmt.Sprintf("%d series", n)
		if res.scalar || n == 1 {
			r.Value = fmtNum(res.samples[0].value)
		}
		if c.Empty != nil && *c.Empty {
			if n == 0 {
				r.Status, r.Value = Pass, "empty"
			} else {
				r.Status, r.Why = Fail, "want an empty result: "+list(describeSamples(res.samples))
			}
			return []CheckResult{r}
		}
		if n == 0 {
			r.Value = "empty"
			if c.Empty != nil { // empty: false
				r.Status, r.Why = Fail, "want a non-empty result"
			} else {
				r.Status, r.Why = Unknown, "empty result: nothing to compare with the thresholds (add empty: false/true to give empty a meaning)"
			}
			return []CheckResult{r}
		}
		var bad, nan []string
		for _, smp := range res.samples {
			switch {
			case isNaN(smp.value):
				nan = append(nan, describeSample(smp))
			case c.Max != nil && smp.value > *c.Max, c.Min != nil && smp.value < *c.Min:
				bad = append(bad, describeSample(smp))
			}
		}
		switch {
		case len(bad) > 0:
			r.Status, r.Why = Fail, "outside the thresholds: "+list(bad)
		case len(nan) > 0:
			r.Status, r.Why = Unknown, "NaN: "+list(nan)
		default:
			r.Status = Pass
		}
		return []CheckResult{r}
	}
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
