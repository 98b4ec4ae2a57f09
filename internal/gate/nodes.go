package gate

// The nodes check: every node Ready, its Lease heartbeat within the lease
// duration, and no readiness flapping within the transitions window.

import (
	"context"
	"fmt"
	"sync"
	"time"
)

func init() {
	registerCheck(checkDef{
		Name:    "nodes",
		Order:   30,
		Switch:  "nodes.enabled: false",
		Enabled: func(p *Policy) bool { return enabled(p.Nodes.Enabled) },
		Defaults: func(p *Policy) {
			if p.Nodes.TransitionsWindow == nil {
				d := Duration(10 * time.Minute)
				p.Nodes.TransitionsWindow = &d
			}
		},
		Run: (*Gate).checkNodes,
	})
}

// NodesPolicy: every node Ready, heartbeats within the lease duration, no
// readiness flapping.
type NodesPolicy struct {
	Enabled *bool `yaml:"enabled"`
	// TransitionsWindow: no Ready transitions in this window (default 10m;
	// 0 turns that part off).
	TransitionsWindow *Duration `yaml:"transitions_window"`
}

// checkNodes judges every node of the cluster: rows nodes/ready,
// nodes/heartbeat and nodes/transitions.
func (g *Gate) checkNodes(ctx context.Context, s *evalState) []CheckResult {
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
