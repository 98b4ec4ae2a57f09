//lint:file-ignore SA1019 The v1 dashboard schema is what Grafana provisions from files and the dashboard sidecar; the SDK marks it deprecated in favour of dashboardv2, which needs Grafana 12's v2 API.

// Package dashboards builds upgradeguard's Grafana dashboards with the
// grafana-foundation-sdk: the AWS VPC CNI, the configured alerts, the
// cluster-wide upgrade overview and the AWS quotas. Every dashboard has a
// stable uid, a Prometheus `datasource` variable and a `cluster` variable,
// and every query selects the cluster and the job whose metrics it reads,
// so the same files work in a multi-cluster Thanos or a single Prometheus.
package dashboards

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// AlertRef names one configured alert. Severity tells apart alerts that
// share a name at two thresholds (warning and critical); empty matches any.
type AlertRef struct {
	Name, Severity string
}

// Options are the selectors users change, and the alerts the "Configured
// alerts" dashboard shows.
type Options struct {
	// ExporterJob is the job label of upgradeguard's exporter.
	ExporterJob string
	// AWSNodeJob is the job label of the aws-node pods' ipamd metrics (port 61678).
	AWSNodeJob string
	// KubeStateMetricsJob is the job label of kube-state-metrics.
	KubeStateMetricsJob string
	// ClusterLabel is the label that names the cluster (an external label
	// of Prometheus, or the exporter's --cluster).
	ClusterLabel string
	// Alerts are the alerts the rules define, one panel each.
	Alerts []AlertRef
}

// DefaultOptions are the jobs and label of a standard install.
func DefaultOptions() Options {
	return Options{
		ExporterJob:         "upgradeguard",
		AWSNodeJob:          "aws-node",
		KubeStateMetricsJob: "kube-state-metrics",
		ClusterLabel:        "cluster",
	}
}

// Generated is one built dashboard and its file.
type Generated struct {
	UID      string
	FileName string
	// Dashboard is the SDK value JSON was marshalled from.
	Dashboard dashboard.Dashboard
	// JSON is the indented dashboard JSON, ending in a newline.
	JSON []byte
}

// The uids stay fixed: links, bookmarks and Grafana's provisioning rely on them.
const (
	uidAlerts  = "upgradeguard-alerts"
	uidCNI     = "upgradeguard-aws-cni"
	uidQuotas  = "upgradeguard-aws-quotas"
	uidCluster = "upgradeguard-cluster-upgrade"
)

// tag is on every dashboard; the dashboards link to each other through it.
const tag = "upgradeguard"

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (o Options) validate() error {
	if !labelName.MatchString(o.ClusterLabel) || strings.HasPrefix(o.ClusterLabel, "__") {
		return fmt.Errorf("cluster label %q is not a Prometheus label name", o.ClusterLabel)
	}
	for name, job := range map[string]string{"exporter": o.ExporterJob, "aws-node": o.AWSNodeJob, "kube-state-metrics": o.KubeStateMetricsJob} {
		if job == "" {
			return fmt.Errorf("the %s job is empty", name)
		}
	}
	seen := map[AlertRef]bool{}
	for _, a := range o.Alerts {
		if a.Name == "" {
			return fmt.Errorf("an alert without a name in %v", o.Alerts)
		}
		if seen[a] {
			return fmt.Errorf("alert %s (severity %q) is listed twice", a.Name, a.Severity)
		}
		seen[a] = true
	}
	return nil
}

// All builds every dashboard, sorted by uid. The output depends only on o.
func All(o Options) ([]Generated, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("dashboard options: %w", err)
	}
	builders := []struct {
		uid, file string
		build     func(Options) *dashboard.DashboardBuilder
	}{
		{uidAlerts, "upgradeguard-alerts.json", configuredAlerts},
		{uidCNI, "upgradeguard-aws-cni.json", awsCNI},
		{uidQuotas, "upgradeguard-aws-quotas.json", awsQuotas},
		{uidCluster, "upgradeguard-cluster-upgrade.json", clusterUpgrade},
	}
	out := make([]Generated, 0, len(builders))
	for _, b := range builders {
		d, err := b.build(o).Build()
		if err != nil {
			return nil, fmt.Errorf("building dashboard %s: %w", b.uid, err)
		}
		numberPanels(&d)
		js, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("marshalling dashboard %s: %w", b.uid, err)
		}
		out = append(out, Generated{UID: b.uid, FileName: b.file, Dashboard: d, JSON: append(js, '\n')})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

// numberPanels gives every panel and row a dashboard-unique id in layout
// order; Grafana needs them unique and the SDK leaves them 0.
func numberPanels(d *dashboard.Dashboard) {
	id := uint32(0)
	for _, p := range d.Panels {
		id++
		switch {
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
			for i := range p.RowPanel.Panels {
				id++
				p.RowPanel.Panels[i].Id = cog.ToPtr(id)
			}
		}
	}
}

// Grafana's interval variables are not PromQL; Expressions puts durations
// in their place so that the result parses.
var intervalVars = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$__range", "1h",
)

// Expressions returns every PromQL expression of g's dashboard: each
// Prometheus target of each panel (rows included), then the series
// selector of each query variable's label_values(). Grafana's
// $__rate_interval, $__interval and $__range are replaced by durations;
// the dashboard variables ($cluster) only occur inside label values.
func Expressions(g Generated) []string {
	var out []string
	add := func(p dashboard.Panel) {
		for _, t := range p.Targets {
			switch q := t.(type) {
			case prometheus.Dataquery:
				out = append(out, intervalVars.Replace(q.Expr))
			case *prometheus.Dataquery:
				out = append(out, intervalVars.Replace(q.Expr))
			}
		}
	}
	for _, p := range g.Dashboard.Panels {
		if p.Panel != nil {
			add(*p.Panel)
		}
		if p.RowPanel != nil {
			for _, rp := range p.RowPanel.Panels {
				add(rp)
			}
		}
	}
	for _, v := range g.Dashboard.Templating.List {
		if v.Type != "query" || v.Query == nil || v.Query.String == nil {
			continue
		}
		out = append(out, intervalVars.Replace(variableSelector(*v.Query.String)))
	}
	return out
}

// variableSelector returns the series selector of a label_values(selector,
// label) variable query, or the query itself when it has another form.
func variableSelector(q string) string {
	inner, ok := strings.CutPrefix(q, "label_values(")
	if !ok {
		return q
	}
	inner, ok = strings.CutSuffix(inner, ")")
	if !ok {
		return q
	}
	if i := strings.LastIndex(inner, ","); i >= 0 {
		return strings.TrimSpace(inner[:i])
	}
	return q
}

// datasource is what every panel, target and variable query uses: the
// dashboard's datasource variable.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// sel writes a series selector of metric for job in the selected cluster,
// with further matchers (already formatted, like `phase="Pending"`).
func (o Options) sel(metric, job string, matchers ...string) string {
	m := append([]string{"job=" + strconv.Quote(job), o.ClusterLabel + `="$cluster"`}, matchers...)
	return metric + "{" + strings.Join(m, ", ") + "}"
}

// exporter, awsNode and ksm select a metric of that job.
func (o Options) exporter(metric string, matchers ...string) string {
	return o.sel(metric, o.ExporterJob, matchers...)
}

func (o Options) awsNode(metric string, matchers ...string) string {
	return o.sel(metric, o.AWSNodeJob, matchers...)
}

func (o Options) ksm(metric string, matchers ...string) string {
	return o.sel(metric, o.KubeStateMetricsJob, matchers...)
}

// alerts selects the ALERTS series of the selected cluster. They carry no
// job of their own: they have the labels of the alert.
func (o Options) alerts(matchers ...string) string {
	m := append([]string{o.ClusterLabel + `="$cluster"`}, matchers...)
	return "ALERTS{" + strings.Join(m, ", ") + "}"
}

// newDashboard starts a dashboard with the shared settings and variables.
// The cluster variable lists the clusters whose exporter reports
// upgradeguard_collector_success: that series exists in every install and
// carries the cluster label whether it comes from an external label or
// from the exporter's --cluster.
func newDashboard(o Options, uid, title, description string) *dashboard.DashboardBuilder {
	clusterQuery := fmt.Sprintf("label_values(%s, %s)",
		fmt.Sprintf("upgradeguard_collector_success{job=%s}", strconv.Quote(o.ExporterJob)), o.ClusterLabel)
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{tag}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-6h", "now").
		Timezone("utc").
		Refresh("1m").
		Link(dashboard.NewDashboardLinkBuilder("upgradeguard").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{tag}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("cluster").
			Label("Cluster").
			Datasource(datasource()).
			Query(dashboard.StringOrMap{String: cog.ToPtr(clusterQuery)}).
			Definition(clusterQuery).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc))
}

// query is one Prometheus target.
type query struct {
	expr, legend string
}

// q is a range query with a legend.
func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// targets builds range queries A, B, ... of the datasource variable.
func targets(qs ...query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, x := range qs {
		b := prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(refID(i)).
			Expr(x.expr).
			Range()
		if x.legend != "" {
			b.LegendFormat(x.legend)
		}
		out = append(out, b)
	}
	return out
}

// tableTargets builds instant table queries A, B, ...; a table of them is
// merged on their labels.
func tableTargets(exprs ...string) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(exprs))
	for i, e := range exprs {
		out = append(out, prometheus.NewDataqueryBuilder().
			Datasource(datasource()).
			RefId(refID(i)).
			Expr(e).
			Instant().
			Format(prometheus.PromQueryFormatTable))
	}
	return out
}

func refID(i int) string { return string(rune('A' + i)) }

// thresholds builds absolute thresholds: base colour, then (value, colour) steps.
func thresholds(base string, steps ...step) *dashboard.ThresholdsConfigBuilder {
	ts := []dashboard.Threshold{{Color: base}}
	for _, s := range steps {
		ts = append(ts, dashboard.Threshold{Value: cog.ToPtr(s.value), Color: s.color})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(ts)
}

type step struct {
	value float64
	color string
}

// Units of Grafana's unit catalogue used here.
const (
	unitCount   = "short"
	unitSeconds = "s"
	unitMillis  = "ms"
	unitPercent = "percentunit"
	unitReqRate = "reqps"
	unitCountPS = "cps"
)
