package gate

// The capacity/ips check: the free addresses of the node's zone (of every
// zone, without a node) cover what a replacement node takes at start, as
// the VPC CNI really allocates it:
//   - with custom networking the node's primary address comes from the node
//     subnets and its pods' from the pod subnets (the ENIConfigs'), each
//     compared with its own need (role label of the zone series);
//   - with prefix delegation the pods need free aligned /28 blocks, not
//     free addresses: the zone's free prefixes (of the pod subnets with
//     custom networking) cover the surge's prefixes;
//   - the answer is UNKNOWN when the exporter sees VPC CNI nodes (the
//     aws-node DaemonSet's upgradeguard_vpc_cni_nodes > 0) but Prometheus
//     scrapes no aws-node target: the CNI's own metrics, and the alerts on
//     them, are missing.

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
)

func init() {
	registerCheck(checkDef{
		Name:     "capacity/ips",
		Order:    50,
		Switch:   "capacity.ips: false",
		Enabled:  func(p *Policy) bool { return enabled(p.Capacity.IPs) },
		Defaults: defaultsCapacity, // the section's, for both capacity checks
		Validate: validateCapacity,
		Run:      (*Gate).checkIPs,
	})
}

// The VPC CNI settings the check reads from upgradeguard_vpc_cni_setting.
const (
	settingPrefixDelegation = "ENABLE_PREFIX_DELEGATION"
	settingCustomNetworking = "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"
)

// ipNeed is what a replacement takes: addresses in the node subnets and in
// the pod subnets (custom networking; else all in the node subnets), and
// /28 prefixes (prefix delegation).
type ipNeed struct {
	node, pod, prefixes float64
	why                 string
}

// checkIPs is the capacity/ips row.
func (g *Gate) checkIPs(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Capacity
	names := "upgradeguard_zone_available_ips|upgradeguard_zone_available_prefixes|upgradeguard_aws_asg_surge_ips|" +
		"upgradeguard_aws_asg_surge_pod_ips|upgradeguard_aws_asg_surge_prefixes|upgradeguard_vpc_cni_nodes|upgradeguard_vpc_cni_setting"
	var extra []string
	if s.node != "" {
		names += "|upgradeguard_node_info"
		extra = append(extra, fmt.Sprintf("node=~%q", "|"+regexp.QuoteMeta(s.node)))
	}
	// The aws-node targets in the same request.
	awsNode := []string{fmt.Sprintf("job=~%q", p.AWSNodeJob)}
	for _, m := range g.policy.matchers {
		awsNode = append(awsNode, m.String())
	}
	q := g.sel(names, extra...) + " or up{" + strings.Join(awsNode, ", ") + "}"
	r := CheckResult{Name: "capacity/ips", Query: q}
	res, err := s.query(ctx, q)
	if err != nil {
		r.Status, r.Why = Unknown, err.Error()
		return []CheckResult{r}
	}
	r = withNote(r, res.note)
	m := byName(res.samples)

	// The VPC CNI's modes: from the exporter's settings when it publishes
	// them, else from the series its collectors emit only in that mode.
	settings := perLabel(m["upgradeguard_vpc_cni_setting"], "setting", true)
	custom := len(m["upgradeguard_aws_asg_surge_pod_ips"]) > 0 || hasRole(m["upgradeguard_zone_available_ips"], "pod")
	prefixMode := len(m["upgradeguard_aws_asg_surge_prefixes"]) > 0 || len(m["upgradeguard_zone_available_prefixes"]) > 0
	var unknown []string
	for name, mode := range map[string]*bool{settingCustomNetworking: &custom, settingPrefixDelegation: &prefixMode} {
		if v, ok := settings[name]; ok {
			if isNaN(v) {
				unknown = append(unknown, "the VPC CNI setting "+name+" is NaN")
			}
			*mode = v != 0
		}
	}

	// Each AWS target (account and region) is judged on its own: its zones'
	// free space against the surge of its own groups. A target without
	// groups of its own (subnets shared from a network account, or an
	// exporter before the account and region labels) is held to the
	// largest surge of any.
	needs := map[string]ipNeed{}
	overall, why := g.ipNeed(m, custom, prefixMode)
	if why != "" {
		r.Status, r.Why = Unknown, why
		return []CheckResult{r}
	}
	if p.IPsNeeded <= 0 {
		for t, sub := range byTarget(m, "upgradeguard_aws_asg_surge_ips", "upgradeguard_aws_asg_surge_pod_ips", "upgradeguard_aws_asg_surge_prefixes") {
			n, why := g.ipNeed(sub, custom, prefixMode)
			if why != "" {
				r.Status, r.Why = Unknown, t.String()+": "+why
				return []CheckResult{r}
			}
			needs[t.String()] = n
		}
	}
	podRole := "node"
	if custom {
		podRole = "pod"
	}
	threshold := func(need ipNeed) string {
		var parts []string
		if custom {
			parts = append(parts, fmt.Sprintf(">= %s free node addresses and >= %s free pod addresses", fmtNum(need.node), fmtNum(need.pod)))
		} else {
			parts = append(parts, fmt.Sprintf(">= %s free", fmtNum(need.node)))
		}
		if prefixMode {
			parts = append(parts, fmt.Sprintf(">= %s free /28 prefixes", fmtNum(need.prefixes)))
		}
		return fmt.Sprintf("%s (%s + %d extra addresses)", strings.Join(parts, ", "), need.why, p.ExtraIPs)
	}
	if len(needs) > 1 {
		var ts []string
		for t, n := range needs {
			ts = append(ts, t+": "+threshold(n))
		}
		sort.Strings(ts)
		r.Threshold = strings.Join(ts, "; ")
	} else {
		r.Threshold = threshold(overall)
	}

	freeIPs := perRole(m["upgradeguard_zone_available_ips"])
	freePrefixes := perRole(m["upgradeguard_zone_available_prefixes"])
	zoneSet := map[zoneKey]bool{}
	accounts := map[string]bool{}
	for _, byZone := range freeIPs {
		for z := range byZone {
			zoneSet[z] = true
			accounts[z.target.account] = true
		}
	}
	var zones []zoneKey
	if s.node != "" {
		var zone string
		for _, smp := range m["upgradeguard_node_info"] {
			zone = smp.labels["zone"]
		}
		if zone == "" {
			r.Status, r.Why = Unknown, fmt.Sprintf("the zone of node %q is unknown (no upgradeguard_node_info with a zone)", s.node)
			return []CheckResult{r}
		}
		// The node's zone in every target that has it.
		for z := range zoneSet {
			if z.zone == zone {
				zones = append(zones, z)
			}
		}
		if len(zones) == 0 {
			zones = []zoneKey{{zone: zone}}
		}
	} else {
		for z := range zoneSet {
			zones = append(zones, z)
		}
		if len(zones) == 0 {
			r.Status, r.Why = Unknown, "no upgradeguard_zone_available_ips series (is the cni collector on?)"
			return []CheckResult{r}
		}
	}
	sort.Slice(zones, func(i, j int) bool { return zones[i].String() < zones[j].String() })
	// Zones are named by their account too when there are several.
	zoneName := func(z zoneKey) string {
		if len(accounts) > 1 {
			return z.zone + " (account " + z.target.account + ")"
		}
		return z.zone
	}

	var short, values []string
	// compare checks one zone's supply of one kind; what names it in the
	// answer ("" for the plain free addresses), metric and role the series
	// it comes from.
	compare := func(zk zoneKey, what string, have map[zoneKey]float64, want float64, metric, role string) {
		v, found := have[zk]
		z := zoneName(zk)
		label, sel := z, metric
		if what != "" {
			label = z + " " + what
		}
		if role != "node" || custom || metric != "upgradeguard_zone_available_ips" {
			sel = fmt.Sprintf("%s{role=%q}", metric, role)
		}
		switch {
		case !found:
			unknown = append(unknown, fmt.Sprintf("no %s for zone %q", sel, z))
			return
		case isNaN(v):
			unknown = append(unknown, label+" NaN")
		case v < want:
			short = append(short, fmt.Sprintf("%s has %s %s, needs %s", z, fmtNum(v), strings.TrimSpace(what+" free"), fmtNum(want)))
		}
		values = append(values, fmt.Sprintf("%s: %s", label, fmtNum(v)))
	}
	extraIPs := float64(p.ExtraIPs)
	for _, z := range zones {
		need, ok := needs[z.target.String()]
		if !ok {
			need = overall
		}
		if custom {
			compare(z, "node addresses", freeIPs["node"], need.node+extraIPs, "upgradeguard_zone_available_ips", "node")
			compare(z, "pod addresses", freeIPs["pod"], need.pod+extraIPs, "upgradeguard_zone_available_ips", "pod")
		} else {
			compare(z, "", freeIPs["node"], need.node+extraIPs, "upgradeguard_zone_available_ips", "node")
		}
		if prefixMode {
			compare(z, "/28 prefixes", freePrefixes[podRole], need.prefixes, "upgradeguard_zone_available_prefixes", podRole)
		}
	}
	r.Value = list(values)

	// The VPC CNI's own metrics.
	cniNodes := math.Inf(-1)
	for _, smp := range m["upgradeguard_vpc_cni_nodes"] {
		if isNaN(smp.value) || smp.value > cniNodes {
			cniNodes = smp.value
		}
	}
	if isNaN(cniNodes) {
		unknown = append(unknown, "upgradeguard_vpc_cni_nodes is NaN")
	} else if cniNodes > 0 && !anyUp(m["up"]) {
		unknown = append(unknown, fmt.Sprintf("the exporter sees %s VPC CNI nodes (the aws-node DaemonSet) but no aws-node target is up (up{job=~%q}): the CNI's own metrics and alerts are missing", fmtNum(cniNodes), p.AWSNodeJob))
	}

	switch {
	case len(short) > 0:
		r.Status, r.Why = Fail, "not enough free address space for a replacement node: "+list(short)
	case len(unknown) > 0:
		r.Status, r.Why = Unknown, list(unknown)
	default:
		r.Status = Pass
	}
	return []CheckResult{r}
}

// ipNeed is the policy's capacity.ips_needed, else the largest surge of any
// group, each part on its own (so two groups' worst parts combine). why is
// set when the need is unknown.
func (g *Gate) ipNeed(m map[string][]sample, custom, prefixMode bool) (ipNeed, string) {
	p := g.policy.Capacity
	if p.IPsNeeded > 0 {
		n := float64(p.IPsNeeded)
		// The policy's number is the pods' and the node's both, the
		// stricter reading.
		return ipNeed{node: n, pod: n, prefixes: math.Ceil(n / 16), why: "capacity.ips_needed"}, ""
	}
	total := m["upgradeguard_aws_asg_surge_ips"]
	if len(total) == 0 {
		return ipNeed{}, "no upgradeguard_aws_asg_surge_ips series (is the awsquota collector on?), so what a replacement needs is unknown; set capacity.ips_needed or turn capacity.ips off"
	}
	byGroup := func(name string) (map[string]float64, string) {
		out := map[string]float64{}
		for _, smp := range m[name] {
			if isNaN(smp.value) {
				return nil, fmt.Sprintf("%s of group %s is NaN", name, smp.labels["asg"])
			}
			out[smp.labels["asg"]] = max(out[smp.labels["asg"]], smp.value)
		}
		return out, ""
	}
	ips, why := byGroup("upgradeguard_aws_asg_surge_ips")
	if why != "" {
		return ipNeed{}, why
	}
	pods, why := byGroup("upgradeguard_aws_asg_surge_pod_ips")
	if why != "" {
		return ipNeed{}, why
	}
	prefixes, why := byGroup("upgradeguard_aws_asg_surge_prefixes")
	if why != "" {
		return ipNeed{}, why
	}
	if custom && len(pods) == 0 {
		return ipNeed{}, "custom networking is on but there is no upgradeguard_aws_asg_surge_pod_ips series (an exporter older than its cni collector?), so the pod subnets' need is unknown; set capacity.ips_needed"
	}
	if prefixMode && len(prefixes) == 0 {
		return ipNeed{}, "prefix delegation is on but there is no upgradeguard_aws_asg_surge_prefixes series, so the /28 prefixes a replacement needs are unknown; set capacity.ips_needed"
	}
	var need ipNeed
	largest, largestGroup := -1.0, ""
	for group, v := range ips {
		nodePart, podPart := v, 0.0
		if custom {
			podPart = pods[group]
			nodePart = v - podPart
		}
		need.node = max(need.node, nodePart)
		need.pod = max(need.pod, podPart)
		need.prefixes = max(need.prefixes, prefixes[group])
		if v > largest || v == largest && group < largestGroup {
			largest, largestGroup = v, group
		}
	}
	need.why = "largest surge of group " + largestGroup
	return need, ""
}

// target is an AWS account and region, the labels of the AWS series; empty
// for series of an exporter before them.
type target struct{ account, region string }

func targetOf(smp sample) target { return target{smp.labels["account"], smp.labels["region"]} }

// String is account/region, the region alone for series without an
// account.
func (t target) String() string {
	if t.account == "" {
		return t.region
	}
	return t.account + "/" + t.region
}

// zoneKey is a zone of a target.
type zoneKey struct {
	target target
	zone   string
}

func (z zoneKey) String() string { return z.target.String() + " " + z.zone }

// byTarget splits the named series of m by their target.
func byTarget(m map[string][]sample, names ...string) map[target]map[string][]sample {
	out := map[target]map[string][]sample{}
	for _, name := range names {
		for _, smp := range m[name] {
			t := targetOf(smp)
			if out[t] == nil {
				out[t] = map[string][]sample{}
			}
			out[t][name] = append(out[t][name], smp)
		}
	}
	return out
}

// perRole splits zone series by their role label and reduces each to one
// value per zone of a target (the lowest, NaN winning). Series without a
// role (an exporter before roles) are the node subnets'.
func perRole(samples []sample) map[string]map[zoneKey]float64 {
	byRole := map[string][]sample{}
	for _, smp := range samples {
		role := smp.labels["role"]
		if role == "" {
			role = "node"
		}
		byRole[role] = append(byRole[role], smp)
	}
	out := map[string]map[zoneKey]float64{}
	for role, ss := range byRole {
		byZone := map[zoneKey]float64{}
		for _, smp := range ss {
			k := zoneKey{targetOf(smp), smp.labels["zone"]}
			old, ok := byZone[k]
			if !ok || isNaN(smp.value) || !isNaN(old) && smp.value < old {
				byZone[k] = smp.value
			}
		}
		out[role] = byZone
	}
	return out
}

func hasRole(samples []sample, role string) bool {
	for _, smp := range samples {
		if smp.labels["role"] == role {
			return true
		}
	}
	return false
}

// anyUp tells whether one of the up series is 1.
func anyUp(samples []sample) bool {
	for _, smp := range samples {
		if smp.value == 1 {
			return true
		}
	}
	return false
}
