package gate

// The nodes/groups row: a node group short of nodes is not GO. Each Auto
// Scaling group of the cluster (upgradeguard_aws_asg_instance_info, from
// the awsquota collector) is compared with the Ready nodes carrying its
// instances' IDs (upgradeguard_node_info{instance_id}), as kops' cluster
// validation compares each instance group's cloud members with the
// cluster's nodes (kops pkg/validation/validate_cluster.go): an instance
// InService whose node never registered, past the startup grace from its
// launch, leaves the group one node short. (A registered node that is not
// Ready is the nodes/ready row's.)

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

func init() {
	registerCheck(checkDef{
		Name:    "nodes/groups",
		Order:   33,
		Switch:  "nodes.enabled: false",
		Enabled: func(p *Policy) bool { return enabled(p.Nodes.Enabled) },
		Run:     (*Gate).checkNodeGroups,
	})
}

// inServiceState is the Auto Scaling lifecycle state of an instance that
// serves: it should have a Ready node.
const inServiceState = "InService"

// checkNodeGroups is the nodes/groups row.
func (g *Gate) checkNodeGroups(ctx context.Context, s *evalState) []CheckResult {
	grace := time.Duration(*g.policy.Nodes.StartupGrace)
	v, err := g.nodeView(ctx, s)
	r := CheckResult{Name: "nodes/groups", Query: v.query,
		Threshold: "every InService instance of the cluster's Auto Scaling groups has a node (instances launched within nodes.startup_grace, and nodes leaving, set aside; a node that is not Ready fails nodes/ready)"}
	if err != nil {
		r.Status, r.Why = Unknown, err.Error()
		return []CheckResult{r}
	}
	m := v.asg
	if len(m["upgradeguard_aws_asg_instance_info"]) == 0 {
		return []CheckResult{skipRow("nodes/groups", "no upgradeguard_aws_asg_instance_info series (the awsquota collector is off, or finds no Auto Scaling group of the cluster): node groups not compared with their instances")}
	}
	byInstance := map[string]*nodeState{}
	for _, n := range v.nodes {
		if n.instanceID != "" {
			byInstance[n.instanceID] = n
		}
	}
	desired := map[string]float64{}
	for _, smp := range m["upgradeguard_aws_asg_desired_capacity"] {
		desired[smp.labels["asg"]] = smp.value
	}
	launched := map[string]float64{}
	for _, smp := range m["upgradeguard_aws_asg_instance_launch_time_seconds"] {
		launched[smp.labels["instance_id"]] = smp.value
	}
	type group struct {
		name, asg                          string
		inService, withNode                int
		missing, aside, starting, notReady []string
	}
	groups := map[string]*group{}
	seen := map[string]bool{}
	for _, smp := range m["upgradeguard_aws_asg_instance_info"] {
		l := smp.labels
		id := l["instance_id"]
		if l["lifecycle_state"] != inServiceState || id == "" || seen[id] || smp.value != 1 {
			continue
		}
		seen[id] = true
		name := l["asg"]
		if ng := l["nodegroup"]; ng != "" && ng != name {
			name += " (node group " + ng + ")"
		}
		gr := groups[name]
		if gr == nil {
			gr = &group{name: name, asg: l["asg"]}
			groups[name] = gr
		}
		gr.inService++
		n := byInstance[id]
		switch {
		case n != nil && n.hasReady && n.ready == 1 && n.leaving == "":
			gr.withNode++
		case n != nil && n.leaving != "":
			gr.aside = append(gr.aside, fmt.Sprintf("%s (node %s %s)", id, n.name, n.leaving))
		case n != nil && n.name == s.node:
			gr.aside = append(gr.aside, fmt.Sprintf("%s (node %s, the node to replace)", id, n.name))
		case n != nil:
			// Registered but not Ready: nodes/ready judges it (with the same
			// startup grace), not this row too.
			gr.notReady = append(gr.notReady, fmt.Sprintf("%s (node %s)", id, n.name))
		default:
			what := "no node"
			lt, ok := launched[id]
			if ok && !isNaN(lt) && float64(s.at.UnixMilli())/1000-lt < grace.Seconds() {
				ago := time.Duration((float64(s.at.UnixMilli())/1000 - lt) * float64(time.Second)).Round(time.Second)
				gr.starting = append(gr.starting, fmt.Sprintf("%s (%s, launched %s ago)", id, what, ago))
				continue
			}
			if !ok {
				what += ", launch time unknown"
			}
			gr.missing = append(gr.missing, fmt.Sprintf("%s (%s)", id, what))
		}
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	var short, aside, registered, values []string
	for _, n := range names {
		gr := groups[n]
		val := fmt.Sprintf("%s %d/%d", gr.name, gr.withNode, gr.inService)
		if d, ok := desired[gr.asg]; ok {
			val += fmt.Sprintf(" (desired %s)", fmtNum(d))
		}
		values = append(values, val)
		if len(gr.missing) > 0 {
			short = append(short, fmt.Sprintf("%s: %d of %d InService instances without a node: %s", gr.name, len(gr.missing), gr.inService, list(gr.missing)))
		}
		if len(gr.notReady) > 0 {
			registered = append(registered, fmt.Sprintf("%s: %s", gr.name, list(gr.notReady)))
		}
		if len(gr.aside) > 0 || len(gr.starting) > 0 {
			aside = append(aside, fmt.Sprintf("%s: %s", gr.name, list(append(append([]string{}, gr.aside...), gr.starting...))))
		}
	}
	r.Value = "Ready nodes / InService instances: " + strings.Join(values, ", ")
	switch {
	case len(groups) == 0:
		r.Status, r.Value = Pass, "no InService instance"
	case len(short) > 0:
		r.Status, r.Why = Fail, "node group short of nodes: "+strings.Join(short, "; ")
	default:
		r.Status = Pass
	}
	if len(registered) > 0 {
		r = withNote(r, "instances whose node is registered but not Ready (judged by nodes/ready): "+strings.Join(registered, "; "))
	}
	if len(aside) > 0 {
		r = withNote(r, "set aside (starting within nodes.startup_grace, leaving, or the node to replace): "+strings.Join(aside, "; "))
	}
	return []CheckResult{withNote(r, v.note)}
}
