package preflight

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/prometheus/common/model"
)

// Capacity thresholds: past 1 the next replacement fails to launch; past
// quotaWarnRatio little is left for anything else during the roll.
const quotaWarnRatio = 0.9

// CapacityQueries are the PromQL queries of CheckCapacity over the
// exporter's raw metrics (no recording rule needed), for extra matchers.
type CapacityQueries struct {
	// Quotas: (usage + surge demand) / limit per AWS quota. The surge
	// demand is the largest Auto Scaling group's (groups are rolled one
	// at a time).
	Quotas string
	// ZoneIPs: free addresses per zone; SurgeIPs: the most addresses one
	// group's surge node takes at start.
	ZoneIPs, SurgeIPs string
}

// NewCapacityQueries writes the queries.
func NewCapacityQueries(matchers string) CapacityQueries {
	sel := func(m string) string {
		if matchers == "" {
			return m
		}
		return m + "{" + matchers + "}"
	}
	return CapacityQueries{
		Quotas:   fmt.Sprintf("(%s + %s) / (%s > 0)", sel("upgradeguard_aws_quota_usage"), sel("upgradeguard_aws_quota_surge_demand"), sel("upgradeguard_aws_quota_limit")),
		ZoneIPs:  sel("upgradeguard_zone_available_ips"),
		SurgeIPs: fmt.Sprintf("max(%s) or max(%s)", sel("upgradeguard_aws_asg_surge_ips"), sel("upgradeguard_node_ip_capacity")),
	}
}

// CapacityData is what the capacity judgement reads: per AWS quota (labels
// account, region, service, quota_code, quota_name) usage plus surge
// demand over limit; per zone (label zone) the free subnet addresses; and
// the most addresses one surge node takes (nil: unknown). A nil vector is a
// source not read; QuotaErr and IPErr say why.
type CapacityData struct {
	Quotas, Zones   model.Vector
	SurgeIPs        *float64
	QuotaErr, IPErr error
	Source          string // "query API", "AWS"
}

// CheckCapacity asks the monitoring whether the roll's surge fits: every
// AWS quota with the surge demand of the largest node group (blocker past
// the limit, warning past 90%), and every zone's free subnet addresses
// against the addresses a surge node takes (blocker when short). Metrics
// that are not there (the exporter's cni or awsquota collector off) are
// unknown.
func CheckCapacity(ctx context.Context, q Querier, matchers string) []Finding {
	qs := NewCapacityQueries(matchers)
	d := CapacityData{Source: "query API"}
	d.Quotas, d.QuotaErr = q.Query(ctx, qs.Quotas)
	if d.QuotaErr == nil && len(d.Quotas) == 0 {
		d.QuotaErr = errors.New("no upgradeguard_aws_quota_* series: run the exporter with --collector.awsquota")
	}
	d.Zones, d.IPErr = q.Query(ctx, qs.ZoneIPs)
	if d.IPErr == nil {
		var surge model.Vector
		surge, d.IPErr = q.Query(ctx, qs.SurgeIPs)
		if d.IPErr == nil && len(surge) > 0 {
			v := float64(surge[0].Value)
			d.SurgeIPs = &v
		}
	}
	if d.IPErr == nil && (len(d.Zones) == 0 || d.SurgeIPs == nil) {
		d.IPErr = errors.New("no upgradeguard_zone_available_ips or surge address series: run the exporter with --collector.cni")
	}
	return JudgeCapacity(d)
}

// JudgeCapacity makes the findings of capacity data, wherever it came from.
func JudgeCapacity(d CapacityData) []Finding {
	var out []Finding
	unknown := func(obj string, err error) {
		out = append(out, Finding{Check: FamilyCapacity, Severity: Unknown, Object: obj, Source: d.Source, Message: err.Error()})
	}
	if d.QuotaErr != nil {
		unknown("AWS quotas", d.QuotaErr)
	} else {
		quotas := d.Quotas
		sort.Slice(quotas, func(i, j int) bool { return quotas[i].Metric.String() < quotas[j].Metric.String() })
		ok := 0
		for _, s := range quotas {
			m := s.Metric
			obj := fmt.Sprintf("%s %s (%s)", m["service"], m["quota_name"], m["quota_code"])
			src := fmt.Sprintf("account %s %s", m["account"], m["region"])
			ratio := float64(s.Value)
			switch {
			case ratio > 1:
				out = append(out, Finding{Check: FamilyCapacity, Severity: Blocker, Object: obj, Source: src,
					Message: fmt.Sprintf("usage plus the surge of the largest node group is %.0f%% of the quota: the roll's new nodes fail to launch; raise the quota first", 100*ratio)})
			case ratio > quotaWarnRatio:
				out = append(out, Finding{Check: FamilyCapacity, Severity: Warning, Object: obj, Source: src,
					Message: fmt.Sprintf("usage plus the surge of the largest node group is %.0f%% of the quota", 100*ratio)})
			default:
				ok++
			}
		}
		out = append(out, Finding{Check: FamilyCapacity, Severity: Info, Object: "AWS quotas", Source: d.Source,
			Message: fmt.Sprintf("%d quotas have room for the surge", ok)})
	}
	if d.IPErr != nil {
		unknown("zone IP space", d.IPErr)
		return out
	}
	need := *d.SurgeIPs
	zones := d.Zones
	sort.Slice(zones, func(i, j int) bool { return zones[i].Metric["zone"] < zones[j].Metric["zone"] })
	for _, z := range zones {
		free := float64(z.Value)
		f := Finding{Check: FamilyCapacity, Object: "zone " + string(z.Metric["zone"]), Source: "upgradeguard_zone_available_ips (" + d.Source + ")"}
		if free < need {
			f.Severity = Blocker
			f.Message = fmt.Sprintf("%.0f free addresses, a surge node takes %.0f: a replacement node there gets no pod IPs; add a subnet or free addresses first", free, need)
		} else {
			f.Severity = Info
			f.Message = fmt.Sprintf("%.0f free addresses, a surge node takes %.0f", free, need)
		}
		out = append(out, f)
	}
	return out
}
