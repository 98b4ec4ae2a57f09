package gate

// The nodes check: every node Ready, its Lease heartbeat within the lease
// duration, and no readiness flapping within the transitions window. Nodes
// on their way out (being deleted, or tainted for removal by the cluster
// autoscaler or Karpenter) and new nodes within their startup grace are
// set aside and named; the node about to be replaced (--node) is reported,
// never blocking: a dead node must be replaceable.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/upgradeguard/upgradeguard/alerts"
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
			if p.Nodes.StartupGrace == nil {
				d := Duration(5 * time.Minute)
				p.Nodes.StartupGrace = &d
			}
			if p.Nodes.LeavingTaints == nil {
				p.Nodes.LeavingTaints = append([]string(nil), DefaultLeavingTaints...)
			}
			if p.Nodes.ShutDownTaints == nil {
				p.Nodes.ShutDownTaints = append([]string(nil), DefaultShutDownTaints...)
			}
		},
		Validate: func(p *Policy, bad func(field, format string, args ...any)) {
			for i, t := range p.Nodes.LeavingTaints {
				if strings.TrimSpace(t) == "" {
					bad(fmt.Sprintf("nodes.leaving_taints[%d]", i), "empty taint key")
				}
			}
			for i, t := range p.Nodes.ShutDownTaints {
				if strings.TrimSpace(t) == "" {
					bad(fmt.Sprintf("nodes.shut_down_taints[%d]", i), "empty taint key")
				}
			}
		},
		Run: withShards((*Gate).checkNodes, shardsEveryNode),
	})
}

// DefaultLeavingTaints are the taint keys that mark a node on its way out:
// the cluster autoscaler's (ToBeDeletedByClusterAutoscaler, set before it
// drains and deletes a node: cluster-autoscaler utils/taints), Karpenter's
// (karpenter.sh/disrupted since v1; karpenter.sh/disruption before), and
// the AWS Node Termination Handler's for an instance AWS will stop or
// terminate (aws-node-termination-handler pkg/node/node.go: a Spot
// interruption notice, an Auto Scaling termination lifecycle hook, a
// scheduled maintenance event; its rebalance-recommendation taint is left
// out: a recommendation, not a termination).
var DefaultLeavingTaints = []string{"ToBeDeletedByClusterAutoscaler", "karpenter.sh/disrupted", "karpenter.sh/disruption",
	"aws-node-termination-handler/spot-itn", "aws-node-termination-handler/asg-lifecycle-termination", "aws-node-termination-handler/scheduled-maintenance"}

// DefaultShutDownTaints are the taint keys that mark a node whose machine
// is shut down and serves nothing: the cloud node lifecycle controller's
// node.cloudprovider.kubernetes.io/shutdown (k8s.io/cloud-provider
// api/well_known_taints.go TaintNodeShutdown; set on a NotReady node whose
// instance the cloud provider reports stopped, as a stopped instance or one
// in an Auto Scaling warm pool is, and removed when it is Ready again) and
// node.kubernetes.io/out-of-service (k8s.io/api core/v1
// well_known_taints.go TaintNodeOutOfService; set by an operator on a node
// shut down for good, so that its pods and volumes are released, the
// non-graceful node shutdown of KEP-2268). Such nodes are set aside and
// named: they hold no running pod, and their readiness tells nothing about
// the cluster's health. The automatic node.kubernetes.io/not-ready and
// unreachable taints are not of this kind: they are what the gate looks
// for.
// The node alerts of the bundle leave the same nodes out
// (alerts.ShutDownTaints).
var DefaultShutDownTaints = append([]string(nil), alerts.ShutDownTaints...)

// NodesPolicy: every node Ready, heartbeats within the lease duration, no
// readiness flapping; nodes leaving or starting set aside.
type NodesPolicy struct {
	Enabled *bool `yaml:"enabled"`
	// Groups compares each Auto Scaling group of the cluster with its
	// nodes (the nodes/groups row, from the awsquota collector's instance
	// series); without those series the row is UNKNOWN. `groups: false`
	// turns the row off, as capacity.ips and capacity.quotas do theirs:
	// for a cluster without Auto Scaling groups (Karpenter or Fargate
	// only) or whose exporter has no AWS access.
	Groups *bool `yaml:"groups"`
	// TransitionsWindow: no Ready transitions in this window (default 10m;
	// 0 turns that part off).
	TransitionsWindow *Duration `yaml:"transitions_window"`
	// StartupGrace: a node created this recently (its
	// upgradeguard_node_created_timestamp_seconds) that is not Ready yet,
	// or has no heartbeat yet, is set aside, and an Auto Scaling instance
	// launched this recently may lack its node (default 5m; 0: none).
	StartupGrace *Duration `yaml:"startup_grace"`
	// LeavingTaints are taint keys marking a node on its way out (default
	// DefaultLeavingTaints); such nodes, and nodes with a
	// deletionTimestamp, are set aside. `leaving_taints: []`: only the
	// deletionTimestamp.
	LeavingTaints []string `yaml:"leaving_taints"`
	// ShutDownTaints are taint keys marking a node whose machine is shut
	// down (default DefaultShutDownTaints); such nodes are set aside and
	// named. `shut_down_taints: []`: none.
	ShutDownTaints []string `yaml:"shut_down_taints"`
}

// asideNotes renders the nodes set aside for a row.
func asideNotes(leaving, starting, target []string) string {
	var notes []string
	if len(leaving) > 0 {
		notes = append(notes, "set aside, on their way out: "+list(leaving))
	}
	if len(starting) > 0 {
		notes = append(notes, "set aside, starting within nodes.startup_grace: "+list(starting))
	}
	if len(target) > 0 {
		notes = append(notes, "the node to replace, reported, not blocking: "+strings.Join(target, ", "))
	}
	return strings.Join(notes, "; ")
}

// shutDownNote renders the shut-down nodes set aside for a row.
func shutDownNote(shutDown []string) string {
	if len(shutDown) == 0 {
		return ""
	}
	return "set aside, shut down (serving nothing): " + list(shutDown)
}

// checkNodes judges every node of the cluster: rows nodes/ready,
// nodes/heartbeat and nodes/transitions.
func (g *Gate) checkNodes(ctx context.Context, s *evalState) []CheckResult {
	window := time.Duration(*g.policy.Nodes.TransitionsWindow)
	grace := time.Duration(*g.policy.Nodes.StartupGrace)
	var qt string
	var tres result
	var terr error
	var wg sync.WaitGroup
	if window > 0 {
		qt = fmt.Sprintf("increase(%s[%s])", g.sel("upgradeguard_node_ready_transitions_total"), promDuration(window))
		wg.Go(func() { tres, terr = s.query(ctx, qt) })
	}
	v, err := g.nodeView(ctx, s)
	wg.Wait()
	q := v.query
	if err != nil {
		rows := unknownRows(q, err, "nodes/ready", "nodes/heartbeat")
		if window > 0 {
			rows = append(rows, CheckResult{Name: "nodes/transitions", Query: qt, Status: Unknown, Why: "no node list: " + err.Error()})
		}
		return rows
	}
	// The nodes judged: all but those on their way out or shut down.
	var judged, leaving, shutDown []string
	for _, name := range v.names() {
		n := v.nodes[name]
		switch {
		case n.shutDown != "":
			shutDown = append(shutDown, fmt.Sprintf("%s (%s)", name, n.shutDown))
			continue
		case n.leaving != "":
			leaving = append(leaving, fmt.Sprintf("%s (%s)", name, n.leaving))
			continue
		}
		judged = append(judged, name)
	}
	var out []CheckResult

	r := CheckResult{Name: "nodes/ready", Query: q, Threshold: "upgradeguard_node_ready == 1 for every node (nodes leaving or starting set aside)"}
	var notReady, nan, starting, target []string
	withReady := 0
	for _, name := range judged {
		n := v.nodes[name]
		if !n.hasReady {
			nan = append(nan, name+" (no readiness series)")
			continue
		}
		withReady++
		switch {
		case n.ready == 1:
		case name == s.node:
			target = append(target, name+" is not Ready")
		case isNaN(n.ready):
			nan = append(nan, name)
		case n.starting(s.at, grace) && !n.heartbeatOverdue():
			starting = append(starting, fmt.Sprintf("%s (created %s ago, not Ready yet)", name, n.createdAgo(s.at)))
		default:
			notReady = append(notReady, name)
		}
	}
	r.Value = fmt.Sprintf("%d of %d ready", readyCount(v, judged), withReady)
	if aside := len(leaving) + len(starting) + len(shutDown); aside > 0 {
		r.Value += fmt.Sprintf(", %d set aside", aside)
	}
	switch {
	case withReady == 0 && len(leaving) == 0 && len(shutDown) == 0:
		r.Status, r.Value, r.Why = Unknown, "no series", "no upgradeguard_node_ready series: the nodes collector is off or not scraped"
	case withReady == 0:
		r.Status, r.Why = Unknown, "no node to check: every node is on its way out or shut down"
	case len(notReady) > 0:
		r.Status, r.Why = Fail, "not ready: "+list(notReady)
	case len(nan) > 0:
		r.Status, r.Why = Unknown, "readiness unknown: "+list(nan)
	default:
		r.Status = Pass
	}
	r = withNote(r, asideNotes(leaving, starting, target))
	r = withNote(r, shutDownNote(shutDown))
	out = append(out, withNote(r, v.note))

	h := CheckResult{Name: "nodes/heartbeat", Query: q, Threshold: "heartbeat age <= lease duration (age on the exporter's clock)"}
	var late, unknown []string
	starting, target = nil, nil
	worst := -1.0
	for _, name := range judged {
		n := v.nodes[name]
		if !n.hasReady {
			continue // nodes/ready says so
		}
		var problem string
		bad := false // late, as opposed to unknown
		switch {
		case !n.hasAge:
			problem = name + " has no Lease heartbeat series"
		case !n.hasLease:
			problem = name + " has no lease duration series"
		case isNaN(n.age) || isNaN(n.lease):
			problem = name + " NaN"
		case n.age < 0:
			// The exporter measures the age on its own clock since it saw
			// the Lease renewed: never negative. A negative age comes from
			// an exporter that compared the kubelet's clock with its own.
			problem = fmt.Sprintf("%s has a negative heartbeat age (%ss): an exporter that reads the kubelet's clock; upgrade the exporter", name, fmtNum(n.age))
		case n.age > n.lease:
			problem, bad = fmt.Sprintf("%s %ss old (lease %ss)", name, fmtNum(float64(int(n.age))), fmtNum(n.lease)), true
		}
		if n.hasAge && !isNaN(n.age) && n.age > worst {
			worst = n.age
		}
		switch {
		case problem == "":
		case name == s.node:
			target = append(target, problem)
		case n.starting(s.at, grace) && !bad:
			starting = append(starting, fmt.Sprintf("%s (created %s ago)", problem, n.createdAgo(s.at)))
		case bad:
			late = append(late, problem)
		default:
			unknown = append(unknown, problem)
		}
	}
	if worst >= 0 {
		h.Value = fmt.Sprintf("oldest %ss", fmtNum(float64(int(worst))))
	}
	switch {
	case withReady == 0:
		h.Status, h.Why = Unknown, "no nodes to check"
	case len(late) > 0:
		h.Status, h.Why = Fail, "heartbeat overdue: "+list(late)
	case len(unknown) > 0:
		h.Status, h.Why = Unknown, list(unknown)
	default:
		h.Status = Pass
	}
	out = append(out, withNote(h, asideNotes(nil, starting, target)))

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
	unknown, starting, target = nil, nil, nil
	since := float64(s.at.Add(-window).UnixMilli()) / 1000
	for _, name := range judged {
		n := v.nodes[name]
		if !n.hasReady {
			continue
		}
		val, ok := inc[name]
		// A node created within the window has had one transition, its
		// first Ready; increase() extrapolates that one to between 1 and
		// 2, and a flap after it to 2 or more.
		young := !isNaN(n.created) && n.created > since
		var problem string
		flap := false
		switch {
		case !ok:
			problem = name + " (no transitions counter over the window yet)"
		case isNaN(val):
			problem = name + " NaN"
		case young && val >= 2, !young && val > 0:
			problem, flap = fmt.Sprintf("%s (%s)", name, fmtNum(val)), true
		}
		switch {
		case problem == "":
		case name == s.node:
			target = append(target, "readiness changed: "+problem)
		case n.starting(s.at, grace):
			starting = append(starting, problem)
		case flap:
			flapping = append(flapping, problem)
		default:
			unknown = append(unknown, problem)
		}
	}
	t.Value = fmt.Sprintf("%d nodes changed readiness", len(flapping))
	switch {
	case withReady == 0:
		t.Status, t.Why = Unknown, "no nodes to check"
	case len(flapping) > 0:
		t.Status, t.Why = Fail, "readiness changed: "+list(flapping)
	case len(unknown) > 0:
		t.Status, t.Why = Unknown, list(unknown)
	default:
		t.Status = Pass
	}
	t = withNote(t, asideNotes(nil, starting, target))
	return append(out, withNote(t, tres.note))
}

// readyCount counts the judged nodes that are Ready.
func readyCount(v *nodeView, judged []string) int {
	c := 0
	for _, name := range judged {
		if n := v.nodes[name]; n.hasReady && n.ready == 1 {
			c++
		}
	}
	return c
}
