package gate

// The capacity/quotas check: every AWS quota's usage plus the surge of the
// cluster's Auto Scaling groups stays within its limit.

import (
	"context"
	"fmt"
)

func init() {
	registerCheck(checkDef{
		Name:    "capacity/quotas",
		Order:   60,
		Switch:  "capacity.quotas: false",
		Enabled: func(p *Policy) bool { return enabled(p.Capacity.Quotas) },
		Run:     (*Gate).checkQuotas,
	})
}

// checkQuotas is the capacity/quotas row.
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
