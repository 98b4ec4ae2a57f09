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
//
// No Auto Scaling series at all is missing data, UNKNOWN with the fix: an
// exporter without the awsquota collector, or groups it does not find
// (untagged), would otherwise switch the protection off without a word.
// Only the policy line nodes.groups: false (or nodes.enabled: false) turns
// the row off.

import (
	"context"
	"fmt"
	"regexp"
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
		Run:     withShards((*Gate).checkNodeGroups, shardsInstances),
	})
}

// inServiceState is the Auto Scaling lifecycle state of an instance that
// serves: it should have a Ready node.
const inServiceState = "InService"

// checkNodeGroups is the nodes/groups row.
func (g *Gate) checkNodeGroups(ctx context.Context, s *evalState) []CheckResult {
	if !enabled(g.policy.Nodes.Groups) {
		// nodes.enabled: false turns the whole nodes check off through the
		// registry; nodes.groups: false this row alone, named the same way.
		return []CheckResult{skipRow("nodes/groups", "disabled in the policy (nodes.groups: false)")}
	}
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
		r.Status, r.Value, r.Why = Unknown, "no series", g.noGroupsWhy(ctx, s)
		return []CheckResult{withNote(r, v.note)}
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
		// missingIDs are the instance IDs of missing, in its order.
		missingIDs []string
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
		case n != nil && n.hasReady && n.ready == 1 && n.leaving == "" && n.shutDown == "":
			gr.withNode++
		case n != nil && n.leaving != "":
			gr.aside = append(gr.aside, fmt.Sprintf("%s (node %s %s)", id, n.name, n.leaving))
		case n != nil && n.shutDown != "":
			// Shut down, as nodes/ready sets it aside: a stopped instance
			// still InService in the last Auto Scaling data fails its
			// health check and is replaced by the group (a warm-pool one
			// is Warmed:Stopped, not InService).
			gr.aside = append(gr.aside, fmt.Sprintf("%s (node %s shut down, %s)", id, n.name, n.shutDown))
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
			gr.missingIDs = append(gr.missingIDs, id)
		}
	}
	// An instance whose node was there after the AWS data was taken is one
	// the data cannot judge: most often the instance a roll (or the group)
	// has just terminated, still InService in the last DescribeAutoScaling
	// Groups answer. It is set aside until fresher data says otherwise.
	var ids []string
	for _, gr := range groups {
		ids = append(ids, gr.missingIDs...)
	}
	var staleNote string
	if len(ids) > 0 {
		recent, note, err := g.nodesSinceAWSRefresh(ctx, s, ids)
		switch {
		case err != nil:
			r.Status, r.Value = Unknown, "query failed"
			r.Why = "instances without a node, and whether their nodes went away after the last AWS refresh is unknown: " + err.Error()
			return []CheckResult{withNote(r, v.note)}
		case len(recent) > 0:
			staleNote = note
			for _, gr := range groups {
				var missing, missingIDs []string
				for i, id := range gr.missingIDs {
					if recent[id] {
						gr.aside = append(gr.aside, id+" (its node went away after the last AWS refresh)")
						continue
					}
					missing, missingIDs = append(missing, gr.missing[i]), append(missingIDs, id)
				}
				gr.missing, gr.missingIDs = missing, missingIDs
			}
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
		// The groups are known and none has an instance in service (all
		// Pending, Standby, Terminating...): no instance to lack a node.
		// Not missing data: the Auto Scaling series are there.
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
		r = withNote(r, "set aside (starting within nodes.startup_grace, leaving, shut down, or the node to replace): "+strings.Join(aside, "; "))
	}
	if staleNote != "" {
		r = withNote(r, staleNote)
	}
	return []CheckResult{withNote(r, v.note)}
}

// noGroupsWhy says why there are no upgradeguard_aws_asg_instance_info
// series and how to fix it, from the awsquota collector's success series:
// one request, made only in that case.
func (g *Gate) noGroupsWhy(ctx context.Context, s *evalState) string {
	const (
		unknown = "no upgradeguard_aws_asg_instance_info series, so whether a node group is short of nodes is unknown"
		optOut  = "; a cluster without Auto Scaling groups (Karpenter or Fargate nodes only) turns the row off with the policy line nodes.groups: false"
		tag     = "tag the cluster's Auto Scaling groups kubernetes.io/cluster/<cluster> with the exporter's --aws.cluster-name=<cluster>, or name each with --collector.awsquota.asg"
	)
	q := g.sel("upgradeguard_collector_success", `collector="awsquota"`)
	res, err := s.query(ctx, q)
	if err != nil {
		return unknown + " (whether the awsquota collector runs is unknown too: " + err.Error() + "). Fix: run the exporter with --collector.awsquota and " + tag + optOut
	}
	var failing []string
	for _, smp := range res.samples {
		if smp.value != 1 {
			failing = append(failing, fmtNum(smp.value))
		}
	}
	switch {
	case len(res.samples) == 0:
		return unknown + ": no awsquota collector reports (upgradeguard_collector_success{collector=\"awsquota\"}). " +
			"Fix: run the exporter with --collector.awsquota (with AWS credentials) and " + tag + optOut
	case len(failing) > 0:
		return unknown + ": the awsquota collector fails (upgradeguard_collector_success " + strings.Join(failing, ", ") +
			"; see the exporter's log, AWS credentials and permissions)" + optOut
	}
	return unknown + ": the awsquota collector runs but finds no Auto Scaling group of the cluster. Fix: " + tag + optOut
}

// nodesSinceAWSRefresh returns which of the instance IDs had a node
// (upgradeguard_node_info{instance_id}) at some time since the oldest
// Auto Scaling data was taken (upgradeguard_aws_refresh_last_success_timestamp_seconds
// of the awsquota_usage refresher, plus 30 s for the scrape interval),
// with a note saying so. Two queries, made only when an InService
// instance has no node.
func (g *Gate) nodesSinceAWSRefresh(ctx context.Context, s *evalState, ids []string) (map[string]bool, string, error) {
	q := g.sel("upgradeguard_aws_refresh_last_success_timestamp_seconds", `collector="awsquota_usage"`)
	res, err := s.query(ctx, q)
	if err != nil {
		return nil, "", err
	}
	now := float64(s.at.UnixMilli()) / 1000
	oldest := now
	for _, smp := range res.samples {
		if !isNaN(smp.value) && smp.value < oldest {
			oldest = smp.value
		}
	}
	if len(res.samples) == 0 {
		// No refresh time: the data's age is unknown, so is whether the
		// nodes went away before or after it.
		return nil, "", fmt.Errorf("no %s", q)
	}
	window := time.Duration(now-oldest)*time.Second + 30*time.Second
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = regexp.QuoteMeta(id)
	}
	qn := fmt.Sprintf("present_over_time(%s[%s])", g.sel("upgradeguard_node_info", fmt.Sprintf("instance_id=~%q", strings.Join(quoted, "|"))), promDuration(window))
	nres, err := s.query(ctx, qn)
	if err != nil {
		return nil, "", err
	}
	recent := map[string]bool{}
	for _, smp := range nres.samples {
		recent[smp.labels["instance_id"]] = true
	}
	age := time.Duration(now-oldest) * time.Second
	return recent, fmt.Sprintf("the Auto Scaling data is %s old (awsquota_usage refresh): instances whose node went away since are not judged until the next refresh", age.Round(time.Second)), nil
}
