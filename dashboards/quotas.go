//lint:file-ignore SA1019 The v1 dashboard schema is what Grafana provisions from files and the dashboard sidecar; the SDK marks it deprecated in favour of dashboardv2, which needs Grafana 12's v2 API.

package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// The exporter computes usage for most quotas and takes Service Quotas'
// utilization report for the rest; surge demand exists only for quotas a
// node replacement draws on. These expressions fill the gaps so that every
// quota with a known usage has a headroom.

// quotaUsage is a quota's usage: computed, else limit times the reported utilization.
func (o Options) quotaUsage() string {
	return "(" + o.exporter("upgradeguard_aws_quota_usage") + " or " +
		o.exporter("upgradeguard_aws_quota_limit") + " * " + o.exporter("upgradeguard_aws_quota_utilization_ratio") + ")"
}

// quotaSurge is a quota's surge demand, 0 where a surge needs none of it.
func (o Options) quotaSurge() string {
	return "(" + o.exporter("upgradeguard_aws_quota_surge_demand") + " or " + o.exporter("upgradeguard_aws_quota_limit") + " * 0)"
}

// quotaHeadroom is what remains of a quota once the next node surge is in.
func (o Options) quotaHeadroom() string {
	return o.exporter("upgradeguard_aws_quota_limit") + " - " + o.quotaUsage() + " - " + o.quotaSurge()
}

// quotaAfterSurge is the share of a quota used once the next node surge is in.
func (o Options) quotaAfterSurge() string {
	return "(" + o.quotaUsage() + " + " + o.quotaSurge() + ") / (" + o.exporter("upgradeguard_aws_quota_limit") + " > 0)"
}

// quotaUtilization is the share of a quota used now.
func (o Options) quotaUtilization() string {
	return o.quotaUsage() + " / (" + o.exporter("upgradeguard_aws_quota_limit") + " > 0)"
}

// usedThresholds colour the share used: the alerts' 80% and 90%, and
// past 100% the quota is exceeded.
func usedThresholds() *dashboard.ThresholdsConfigBuilder {
	return thresholds("green", step{0.8, "yellow"}, step{0.9, "orange"}, step{1, "red"})
}

// awsQuotas is the "AWS quotas" dashboard: limit, usage, surge demand and
// headroom of every quota the exporter watches, and their history.
func awsQuotas(o Options) *dashboard.DashboardBuilder {
	legend := "{{account}} {{region}} {{quota_name}}"
	cellBackground := dashboard.DynamicConfigValue{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background"}}
	refresh := func(collector string) string {
		// The oldest account and region's.
		return "time() - min(" + o.exporter("upgradeguard_aws_refresh_last_success_timestamp_seconds", `collector="`+collector+`"`) + ")"
	}
	staleness := thresholds("green", step{2 * 3600, "yellow"}, step{6 * 3600, "red"})

	return newDashboard(o, uidQuotas, "AWS quotas",
		"AWS service quotas of the cluster's accounts and regions (job "+o.ExporterJob+"): limit, usage, the extra usage of the next node surge, and headroom.").
		WithPanel(singleStat("Quotas above 80%", "Quotas whose usage is above 80% of the limit now.", unitCount,
			"count("+o.quotaUtilization()+" > 0.8) or vector(0)",
			thresholds("green", step{1, "orange"}))).
		WithPanel(singleStat("Quotas a surge would exceed", "Quotas whose usage plus the next node surge's demand is above the limit: the next node replacement would fail.", unitCount,
			"count("+o.quotaAfterSurge()+" > 1) or vector(0)",
			thresholds("green", step{1, "red"}))).
		WithPanel(singleStat("Groups with unknown surge", "Auto Scaling groups whose instance types are unknown (attribute-based selection): "+
			"their surge demand is not counted, so the demand shown is a lower bound.", unitCount,
			"sum("+o.exporter("upgradeguard_aws_surge_unresolved_groups")+") or vector(0)",
			thresholds("green", step{1, "orange"}))).
		WithPanel(singleStat("Quota limits age", "Time since the exporter last refreshed the quota limits from Service Quotas (hourly by default), of the account and region refreshed longest ago.", unitSeconds,
			refresh("awsquota_limits"), staleness).Span(5)).
		WithPanel(singleStat("Quota usage age", "Time since the exporter last refreshed usage and surge demand from the describe calls (every 5 minutes by default), of the account and region refreshed longest ago.", unitSeconds,
			refresh("awsquota_usage"), thresholds("green", step{1800, "yellow"}, step{3600, "red"})).Span(5)).
		WithPanel(singleStat("Exporter AWS errors", "AWS requests of the exporter that failed, per second, throttling included.", unitCountPS,
			"sum(rate("+o.exporter("upgradeguard_aws_api_requests_total", `code!="ok"`)+"[$__rate_interval])) or vector(0)",
			thresholds("green", step{0.001, "orange"})).Span(5)).
		WithPanel(instantTable("Quotas", "Every watched quota: limit, usage, the next surge's demand, the headroom left once the surge is in "+
			"(negative: the surge would fail) and the share used after the surge.", unitCount, 24, 12,
			[]string{"account", "region", "service", "quota_code", "quota_name"},
			map[string]string{
				"Value #A": "Limit", "Value #B": "Usage", "Value #C": "Surge demand", "Value #D": "Headroom after surge", "Value #E": "Used after surge",
				"quota_name": "Quota", "quota_code": "Code", "service": "Service", "region": "Region", "account": "Account",
			},
			o.exporter("upgradeguard_aws_quota_limit"),
			o.quotaUsage(),
			o.exporter("upgradeguard_aws_quota_surge_demand"),
			o.quotaHeadroom(),
			o.quotaAfterSurge()).
			SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("Used after surge").Desc(true)}).
			OverrideByName("Used after surge", []dashboard.DynamicConfigValue{
				{Id: "unit", Value: unitPercent},
				{Id: "thresholds", Value: thresholdsValue("green", step{0.8, "yellow"}, step{0.9, "orange"}, step{1, "red"})},
				cellBackground,
			}).
			OverrideByName("Headroom after surge", []dashboard.DynamicConfigValue{
				{Id: "thresholds", Value: thresholdsValue("red", step{0, "green"})}, cellBackground,
			})).
		WithPanel(withThresholdLines(timeSeries("Usage over time", "Usage of each quota as a share of its limit.", unitPercent, 12,
			q(o.quotaUtilization(), legend)), usedThresholds())).
		WithPanel(withThresholdLines(timeSeries("Usage plus surge demand over time",
			"Usage plus the next node surge's demand as a share of the limit; above 100% the next node replacement would fail.", unitPercent, 12,
			q(o.quotaAfterSurge(), legend)), usedThresholds())).
		WithPanel(timeSeries("Usage over time, in the quota's unit", "Usage of each quota in its own unit (vCPUs, TiB, count); quotas at 0 are left out.", unitCount, 12,
			q(o.quotaUsage()+" > 0", legend+" usage"))).
		WithPanel(timeSeries("Exporter AWS requests by outcome", "AWS requests of the exporter by service, operation and outcome (ok or the AWS error code); "+
			"sustained throttling leaves quota data stale.", unitReqRate, 12,
			q("sum by (service, operation, code) (rate("+o.exporter("upgradeguard_aws_api_requests_total")+"[$__rate_interval]))", "{{service}} {{operation}} {{code}}")))
}

// thresholdsValue is an override's thresholds in the form the JSON decodes
// back to (a map), so that a dashboard re-marshals byte for byte.
func thresholdsValue(base string, steps ...step) map[string]any {
	ts := []any{map[string]any{"color": base, "value": nil}}
	for _, s := range steps {
		ts = append(ts, map[string]any{"color": s.color, "value": s.value})
	}
	return map[string]any{"mode": string(dashboard.ThresholdsModeAbsolute), "steps": ts}
}
