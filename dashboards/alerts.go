//lint:file-ignore SA1019 The v1 dashboard schema is what Grafana provisions from files and the dashboard sidecar; the SDK marks it deprecated in favour of dashboardv2, which needs Grafana 12's v2 API.

package dashboards

import (
	"strconv"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// severityColors colour a configured alert's firing series by its severity.
var severityColors = map[string]string{"critical": "red", "warning": "orange", "info": "blue"}

// configuredAlerts is the "Configured alerts" dashboard: one panel per
// alert of o.Alerts, in their order, with the number of its firing and
// pending instances over time. It is built from the same list as the rules,
// so an alert added there gets its panel here.
func configuredAlerts(o Options) *dashboard.DashboardBuilder {
	b := newDashboard(o, uidAlerts, "Configured alerts",
		"Firing and pending state over time of every alert upgradeguard's rules define, one panel per alert.")
	for _, a := range o.Alerts {
		b.WithPanel(alertPanel(o, a))
	}
	return b
}

// alertSelector selects the ALERTS series of one configured alert.
func (o Options) alertSelector(a AlertRef) string {
	m := []string{"alertname=" + strconv.Quote(a.Name)}
	if a.Severity != "" {
		m = append(m, "severity="+strconv.Quote(a.Severity))
	}
	return o.alerts(m...)
}

func alertPanel(o Options, a AlertRef) cogPanel {
	title := a.Name
	if a.Severity != "" {
		title += " (" + a.Severity + ")"
	}
	firing := severityColors[a.Severity]
	if firing == "" {
		firing = "red"
	}
	return stacked(timeSeries(title,
		"Instances of "+a.Name+" firing and pending, from Prometheus's ALERTS series.",
		unitCount, 8,
		q("count by (alertstate) ("+o.alertSelector(a)+")", "{{alertstate}}"))).
		Height(6).
		Decimals(0).
		LineInterpolation(common.LineInterpolationStepAfter).
		NoValue("0").
		OverrideByName("firing", fixedColor(firing)).
		OverrideByName("pending", fixedColor("yellow"))
}
