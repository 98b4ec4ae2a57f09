package gate

// The capacity/ips check: the free addresses of the node's zone (of every
// zone, without a node) cover what a replacement node takes at start.

import (
	"context"
	"fmt"
	"regexp"
	"sort"
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

// checkIPs is the capacity/ips row.
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
