package gate

// What the gate knows of each node, from one query shared by the nodes
// check and the node group check: readiness, heartbeat, creation, and
// whether the node is on its way out.

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
)

// nodeState is one node as the exporter reports it.
type nodeState struct {
	name                  string
	ready, age, lease     float64
	hasReady, hasAge      bool
	hasLease              bool
	created               float64 // Unix seconds; NaN or 0 when unknown
	instanceID, nodegroup string
	// leaving says why the node is on its way out ("" when it is not): a
	// deletionTimestamp, or one of the policy's leaving taints.
	leaving string
	// shutDown says why the node's machine is shut down ("" when it is
	// not): one of the policy's shut-down taints.
	shutDown string
}

// starting reports whether the node was created within the startup grace
// before at (a node without a creation time is not starting).
func (n nodeState) starting(at time.Time, grace time.Duration) bool {
	if isNaN(n.created) || n.created <= 0 || grace <= 0 {
		return false
	}
	return float64(at.UnixMilli())/1000-n.created < grace.Seconds()
}

// heartbeatOverdue reports whether the node's kubelet has renewed its
// Lease before and stopped: an age (on the exporter's clock) beyond the
// lease duration. A kubelet that is still starting has no Lease yet, or one
// it renews every 10 s; one whose heartbeat is overdue has died, so a young
// node in that state is not "starting" but dead, and is judged like any
// other node (the node lifecycle controller likewise marks a node whose
// Lease goes unrenewed Unknown whatever its age).
func (n nodeState) heartbeatOverdue() bool {
	return n.hasAge && n.hasLease && !isNaN(n.age) && !isNaN(n.lease) && n.age > n.lease
}

// createdAgo renders how long ago the node was created.
func (n nodeState) createdAgo(at time.Time) string {
	d := time.Duration((float64(at.UnixMilli())/1000 - n.created) * float64(time.Second))
	return d.Round(time.Second).String()
}

// nodeView is every node of the cluster, by name.
type nodeView struct {
	query string
	note  string
	nodes map[string]*nodeState
	// asg holds the Auto Scaling series (asgSeries) by metric name.
	asg map[string][]sample
}

// node returns the named node, nil when unknown (or v is nil).
func (v *nodeView) node(name string) *nodeState {
	if v == nil {
		return nil
	}
	return v.nodes[name]
}

// names returns the node names, sorted.
func (v *nodeView) names() []string {
	out := make([]string, 0, len(v.nodes))
	for n := range v.nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// asgSeries are the Auto Scaling series the nodes/groups row compares with
// the nodes, read in the same query.
const asgSeries = "upgradeguard_aws_asg_instance_info|upgradeguard_aws_asg_instance_launch_time_seconds|upgradeguard_aws_asg_desired_capacity"

// nodesQuery is the query of the node view: the node series, the cluster's
// Auto Scaling instances, and the taints of the policy's leaving and
// shut-down lists (not every taint of every node).
func (g *Gate) nodesQuery() string {
	q := g.sel("upgradeguard_node_ready|upgradeguard_node_heartbeat_age_seconds|upgradeguard_node_lease_duration_seconds|upgradeguard_node_created_timestamp_seconds|upgradeguard_node_deletion_timestamp_seconds|upgradeguard_node_info|" + asgSeries + "|" + shardsMetric)
	if taints := append(append([]string(nil), g.policy.Nodes.LeavingTaints...), g.policy.Nodes.ShutDownTaints...); len(taints) > 0 {
		keys := make([]string, len(taints))
		for i, t := range taints {
			keys[i] = regexp.QuoteMeta(t)
		}
		q += " or " + g.sel("upgradeguard_node_spec_taint", fmt.Sprintf("key=~%q", strings.Join(keys, "|")))
	}
	return q
}

// nodeView reads the nodes (the query is sent once per evaluation however
// many checks ask).
func (g *Gate) nodeView(ctx context.Context, s *evalState) (*nodeView, error) {
	q := g.nodesQuery()
	res, err := s.query(ctx, q)
	if err != nil {
		return &nodeView{query: q}, err
	}
	v := &nodeView{query: q, note: res.note, nodes: map[string]*nodeState{}}
	get := func(name string) *nodeState {
		n := v.nodes[name]
		if n == nil {
			n = &nodeState{name: name, created: math.NaN()}
			v.nodes[name] = n
		}
		return n
	}
	m := byName(res.samples)
	v.asg = map[string][]sample{}
	for _, name := range strings.Split(asgSeries, "|") {
		v.asg[name] = m[name]
	}
	for name, val := range perLabel(m["upgradeguard_node_ready"], "node", false) {
		n := get(name)
		n.ready, n.hasReady = val, true
	}
	for name, val := range perLabel(m["upgradeguard_node_heartbeat_age_seconds"], "node", true) {
		n := get(name)
		n.age, n.hasAge = val, true
	}
	for name, val := range perLabel(m["upgradeguard_node_lease_duration_seconds"], "node", false) {
		n := get(name)
		n.lease, n.hasLease = val, true
	}
	for name, val := range perLabel(m["upgradeguard_node_created_timestamp_seconds"], "node", true) {
		get(name).created = val
	}
	for _, smp := range m["upgradeguard_node_info"] {
		if smp.labels["node"] == "" {
			continue
		}
		n := get(smp.labels["node"])
		if id := smp.labels["instance_id"]; id != "" {
			n.instanceID = id
		}
		if ng := smp.labels["nodegroup"]; ng != "" {
			n.nodegroup = ng
		}
	}
	// On its way out: deletionTimestamp set, or a leaving taint. A node
	// known only from these series (no readiness) is still named.
	for _, smp := range m["upgradeguard_node_deletion_timestamp_seconds"] {
		if !isNaN(smp.value) && smp.value > 0 {
			get(smp.labels["node"]).leaving = "deletionTimestamp set"
		}
	}
	shutDownTaint := map[string]bool{}
	for _, k := range g.policy.Nodes.ShutDownTaints {
		shutDownTaint[k] = true
	}
	for _, smp := range m["upgradeguard_node_spec_taint"] {
		n := get(smp.labels["node"])
		switch key := smp.labels["key"]; {
		case shutDownTaint[key]:
			if n.shutDown == "" {
				n.shutDown = "tainted " + key
			}
		case n.leaving == "":
			n.leaving = "tainted " + key
		}
	}
	// A shut-down taint is the cloud provider's word when the node went
	// NotReady, and the cloud node lifecycle controller removes it only
	// once the node is Ready again (k8s.io/cloud-provider
	// controllers/nodelifecycle MonitorNodes): a stopped instance started
	// again whose node stays NotReady keeps it. A kubelet that renews its
	// Lease runs on a machine that is up, so such a node is not shut down
	// but broken, and is judged. Without a heartbeat series the taint is
	// taken at its word.
	for _, n := range v.nodes {
		if n.shutDown != "" && n.hasAge && n.hasLease && !isNaN(n.age) && !isNaN(n.lease) && n.age <= n.lease {
			n.shutDown = ""
		}
	}
	// node_info alone (no readiness) names no node to judge.
	for name, n := range v.nodes {
		if !n.hasReady && !n.hasAge && n.leaving == "" && n.shutDown == "" {
			delete(v.nodes, name)
		}
	}
	return v, nil
}
