//lint:file-ignore SA1019 The v1 dashboard schema is what Grafana provisions from files and the dashboard sidecar; the SDK marks it deprecated in favour of dashboardv2, which needs Grafana 12's v2 API.

package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

func TestMain(m *testing.M) {
	// The SDK decodes panel options and targets through its plugin registry.
	plugins.RegisterDefaultPlugins()
	os.Exit(m.Run())
}

var testAlerts = []AlertRef{
	{Name: "UpgradeguardAWSQuotaHigh", Severity: "warning"},
	{Name: "UpgradeguardAWSQuotaHigh", Severity: "critical"},
	{Name: "UpgradeguardPDBAtZeroDisruptions", Severity: "warning"},
	{Name: "UpgradeguardExporterDown", Severity: "critical"},
}

// customOptions differ from the defaults in every selector, so that a
// hard-coded job or label shows.
func customOptions() Options {
	return Options{
		ExporterJob:         "ug-exporter",
		AWSNodeJob:          "kube-system/aws-node",
		KubeStateMetricsJob: "ksm",
		ClusterLabel:        "k8s_cluster",
		Alerts:              testAlerts,
	}
}

func optionSets() map[string]Options {
	d := DefaultOptions()
	d.Alerts = testAlerts
	return map[string]Options{"default": d, "custom": customOptions()}
}

func build(t *testing.T, o Options) []Generated {
	t.Helper()
	gs, err := All(o)
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	return gs
}

// panels returns every non-row panel, rows' nested panels included.
func panels(d dashboard.Dashboard) []dashboard.Panel {
	var out []dashboard.Panel
	for _, p := range d.Panels {
		if p.Panel != nil {
			out = append(out, *p.Panel)
		}
		if p.RowPanel != nil {
			out = append(out, p.RowPanel.Panels...)
		}
	}
	return out
}

func TestDefaultOptions(t *testing.T) {
	want := Options{ExporterJob: "upgradeguard", AWSNodeJob: "aws-node", KubeStateMetricsJob: "kube-state-metrics", ClusterLabel: "cluster"}
	if got := DefaultOptions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("DefaultOptions() = %+v, want %+v", got, want)
	}
}

func TestUIDsStableAndUnique(t *testing.T) {
	want := []struct{ uid, file, title string }{
		{"upgradeguard-alerts", "upgradeguard-alerts.json", "Configured alerts"},
		{"upgradeguard-aws-cni", "upgradeguard-aws-cni.json", "AWS CNI"},
		{"upgradeguard-aws-quotas", "upgradeguard-aws-quotas.json", "AWS quotas"},
		{"upgradeguard-cluster-upgrade", "upgradeguard-cluster-upgrade.json", "Cluster upgrade"},
	}
	for name, o := range optionSets() {
		gs := build(t, o)
		if len(gs) != len(want) {
			t.Fatalf("%s: %d dashboards, want %d", name, len(gs), len(want))
		}
		for i, g := range gs {
			w := want[i]
			if g.UID != w.uid || g.FileName != w.file {
				t.Errorf("%s: dashboard %d is %s in %s, want %s in %s", name, i, g.UID, g.FileName, w.uid, w.file)
			}
			if g.Dashboard.Uid == nil || *g.Dashboard.Uid != g.UID {
				t.Errorf("%s: %s: dashboard uid %v", name, g.UID, g.Dashboard.Uid)
			}
			if g.Dashboard.Title == nil || *g.Dashboard.Title != w.title {
				t.Errorf("%s: %s: title %v, want %q", name, g.UID, g.Dashboard.Title, w.title)
			}
			if len(g.UID) > 40 {
				t.Errorf("%s: uid %s is longer than Grafana's 40 characters", name, g.UID)
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, b := build(t, customOptions()), build(t, customOptions())
	for i := range a {
		if !bytes.Equal(a[i].JSON, b[i].JSON) {
			t.Errorf("%s: two builds from the same options differ", a[i].UID)
		}
	}
}

// TestJSONRoundTrip: every file decodes into the SDK's Dashboard, strictly
// (no unknown or mistyped field), and encodes back to the same bytes.
func TestJSONRoundTrip(t *testing.T) {
	for name, o := range optionSets() {
		for _, g := range build(t, o) {
			var d dashboard.Dashboard
			if err := json.Unmarshal(g.JSON, &d); err != nil {
				t.Errorf("%s: %s: unmarshal: %v", name, g.UID, err)
				continue
			}
			again, err := json.MarshalIndent(d, "", "  ")
			if err != nil {
				t.Errorf("%s: %s: marshal: %v", name, g.UID, err)
				continue
			}
			if !bytes.Equal(append(again, '\n'), g.JSON) {
				t.Errorf("%s: %s: JSON changes through the SDK's Dashboard type:\n%s", name, g.UID, firstDiff(g.JSON, again))
			}
			var strict dashboard.Dashboard
			// The SDK returns an empty cog.BuildErrors, not nil, when all is well.
			var errs cog.BuildErrors
			if err := strict.UnmarshalJSONStrict(g.JSON); err != nil && !(errors.As(err, &errs) && len(errs) == 0) {
				t.Errorf("%s: %s: strict unmarshal: %v", name, g.UID, err)
			}
			// The decoded targets are Prometheus queries again, not raw maps.
			for _, p := range panels(d) {
				for _, tg := range p.Targets {
					if _, ok := tg.(*prometheus.Dataquery); !ok {
						t.Errorf("%s: %s: panel %q: target decodes as %T", name, g.UID, title(p), tg)
					}
				}
			}
			if !strings.HasSuffix(string(g.JSON), "}\n") || !strings.Contains(string(g.JSON), "\n  \"") {
				t.Errorf("%s: %s: JSON is not indented with a final newline", name, g.UID)
			}
		}
	}
}

func firstDiff(a, b []byte) string {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			lo := max(0, i-200)
			return fmt.Sprintf("generated: ...%s\nre-marshalled: ...%s", a[lo:min(len(a), i+200)], b[lo:min(len(b), i+200)])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(a), len(b))
}

func title(p dashboard.Panel) string {
	if p.Title == nil {
		return "<untitled>"
	}
	return *p.Title
}

// TestPanels: every panel queries the datasource variable, has a unit and a
// unique id, and the grid has no overlap.
func TestPanels(t *testing.T) {
	for name, o := range optionSets() {
		for _, g := range build(t, o) {
			ids := map[uint32]string{}
			titles := map[string]bool{}
			ps := panels(g.Dashboard)
			if g.UID != uidAlerts && len(ps) == 0 {
				t.Errorf("%s: %s has no panels", name, g.UID)
			}
			for _, p := range ps {
				where := fmt.Sprintf("%s: %s: panel %q", name, g.UID, title(p))
				if p.Title == nil || *p.Title == "" || p.Description == nil || *p.Description == "" {
					t.Errorf("%s: needs a title and a description", where)
				}
				if titles[title(p)] {
					t.Errorf("%s: another panel has the same title", where)
				}
				titles[title(p)] = true
				if p.Id == nil {
					t.Errorf("%s: no id", where)
				} else if other, dup := ids[*p.Id]; dup {
					t.Errorf("%s: id %d is also panel %q's", where, *p.Id, other)
				} else {
					ids[*p.Id] = title(p)
				}
				if p.Datasource == nil || p.Datasource.Uid == nil || *p.Datasource.Uid != "${datasource}" ||
					p.Datasource.Type == nil || *p.Datasource.Type != "prometheus" {
					t.Errorf("%s: datasource %+v, want the prometheus ${datasource} variable", where, p.Datasource)
				}
				if p.FieldConfig == nil || p.FieldConfig.Defaults.Unit == nil || *p.FieldConfig.Defaults.Unit == "" {
					t.Errorf("%s: no unit", where)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no query", where)
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					dq, ok := tg.(prometheus.Dataquery)
					if !ok {
						t.Errorf("%s: target is %T, not a Prometheus query", where, tg)
						continue
					}
					if strings.TrimSpace(dq.Expr) == "" {
						t.Errorf("%s: empty expression", where)
					}
					if dq.Datasource == nil || dq.Datasource.Uid == nil || *dq.Datasource.Uid != "${datasource}" {
						t.Errorf("%s: target %q does not use the datasource variable", where, dq.Expr)
					}
					if dq.RefId == nil || refs[*dq.RefId] {
						t.Errorf("%s: target %q has a missing or repeated refId", where, dq.Expr)
					} else {
						refs[*dq.RefId] = true
					}
				}
			}
			checkGrid(t, name+": "+g.UID, g.Dashboard)
		}
	}
}

// checkGrid: the top-level grid is at most 24 wide, nothing overlaps, and
// rows are not collapsed (so they hold no panels of their own: Grafana
// would drop them, grafana-foundation-sdk issue #504).
func checkGrid(t *testing.T, where string, d dashboard.Dashboard) {
	t.Helper()
	type box struct {
		name       string
		x, y, w, h uint32
	}
	var boxes []box
	for _, p := range d.Panels {
		var gp *dashboard.GridPos
		var name string
		switch {
		case p.Panel != nil:
			gp, name = p.Panel.GridPos, title(*p.Panel)
		case p.RowPanel != nil:
			gp, name = p.RowPanel.GridPos, "row "+*p.RowPanel.Title
			if p.RowPanel.Collapsed || len(p.RowPanel.Panels) > 0 {
				t.Errorf("%s: %s is collapsed or holds panels", where, name)
			}
		}
		if gp == nil || gp.W == 0 || gp.H == 0 || gp.X+gp.W > 24 {
			t.Errorf("%s: %s: bad grid position %+v", where, name, gp)
			continue
		}
		b := box{name, gp.X, gp.Y, gp.W, gp.H}
		for _, o := range boxes {
			if b.x < o.x+o.w && o.x < b.x+b.w && b.y < o.y+o.h && o.y < b.y+b.h {
				t.Errorf("%s: %s %+v overlaps %s %+v", where, b.name, b, o.name, o)
			}
		}
		boxes = append(boxes, b)
	}
}

// TestVariables: a Prometheus datasource variable and a cluster variable
// listing the configured label through that datasource.
func TestVariables(t *testing.T) {
	for name, o := range optionSets() {
		for _, g := range build(t, o) {
			vars := g.Dashboard.Templating.List
			if len(vars) != 2 {
				t.Fatalf("%s: %s: %d variables, want datasource and cluster", name, g.UID, len(vars))
			}
			ds, cl := vars[0], vars[1]
			if ds.Name != "datasource" || ds.Type != "datasource" || ds.Query == nil || ds.Query.String == nil || *ds.Query.String != "prometheus" {
				t.Errorf("%s: %s: datasource variable %+v", name, g.UID, ds)
			}
			if cl.Name != "cluster" || cl.Type != "query" || cl.Query == nil || cl.Query.String == nil {
				t.Fatalf("%s: %s: cluster variable %+v", name, g.UID, cl)
			}
			wantQuery := fmt.Sprintf(`label_values(upgradeguard_collector_success{job=%q}, %s)`, o.ExporterJob, o.ClusterLabel)
			if *cl.Query.String != wantQuery {
				t.Errorf("%s: %s: cluster query %q, want %q", name, g.UID, *cl.Query.String, wantQuery)
			}
			if cl.Datasource == nil || cl.Datasource.Uid == nil || *cl.Datasource.Uid != "${datasource}" {
				t.Errorf("%s: %s: cluster variable datasource %+v", name, g.UID, cl.Datasource)
			}
		}
	}
}

func TestConfiguredAlertsOnePanelEach(t *testing.T) {
	for _, n := range []int{0, 1, len(testAlerts)} {
		o := DefaultOptions()
		o.Alerts = testAlerts[:n]
		var d dashboard.Dashboard
		for _, g := range build(t, o) {
			if g.UID == uidAlerts {
				d = g.Dashboard
			}
		}
		ps := panels(d)
		if len(ps) != n {
			t.Fatalf("%d alerts: %d panels", n, len(ps))
		}
		for i, a := range o.Alerts {
			p := ps[i]
			if want := a.Name + " (" + a.Severity + ")"; title(p) != want {
				t.Errorf("panel %d is %q, want %q", i, title(p), want)
			}
			if len(p.Targets) != 1 {
				t.Fatalf("panel %q: %d targets", title(p), len(p.Targets))
			}
			expr := p.Targets[0].(prometheus.Dataquery).Expr
			want := fmt.Sprintf(`count by (alertstate) (ALERTS{cluster="$cluster", alertname=%q, severity=%q})`, a.Name, a.Severity)
			if expr != want {
				t.Errorf("panel %q: %s, want %s", title(p), expr, want)
			}
		}
	}
}

func TestAlertWithoutSeverityMatchesAny(t *testing.T) {
	o := DefaultOptions()
	o.Alerts = []AlertRef{{Name: "Foo"}}
	for _, g := range build(t, o) {
		if g.UID != uidAlerts {
			continue
		}
		ps := panels(g.Dashboard)
		if len(ps) != 1 || title(ps[0]) != "Foo" {
			t.Fatalf("panels %v", ps)
		}
		if expr := ps[0].Targets[0].(prometheus.Dataquery).Expr; strings.Contains(expr, "severity") {
			t.Errorf("%s selects a severity", expr)
		}
	}
}

func TestFiringAlertsAreTheConfiguredOnes(t *testing.T) {
	o := DefaultOptions()
	o.Alerts = []AlertRef{{Name: "A.B", Severity: "warning"}, {Name: "A.B", Severity: "critical"}, {Name: "C", Severity: "info"}}
	found := 0
	for _, g := range build(t, o) {
		for _, e := range Expressions(g) {
			if strings.Contains(e, `alertstate="firing"`) {
				found++
				if !strings.Contains(e, `alertname=~"A\\.B|C"`) {
					t.Errorf("%s: %s does not select exactly the configured alerts", g.UID, e)
				}
			}
		}
	}
	if found == 0 {
		t.Error("no expression selects firing alerts")
	}
}

func TestOptionErrors(t *testing.T) {
	for name, mutate := range map[string]func(*Options){
		"bad cluster label":  func(o *Options) { o.ClusterLabel = "k8s-cluster" },
		"reserved label":     func(o *Options) { o.ClusterLabel = "__name__" },
		"empty exporter job": func(o *Options) { o.ExporterJob = "" },
		"empty aws-node job": func(o *Options) { o.AWSNodeJob = "" },
		"empty ksm job":      func(o *Options) { o.KubeStateMetricsJob = "" },
		"alert without name": func(o *Options) { o.Alerts = []AlertRef{{Severity: "warning"}} },
		"alert listed twice": func(o *Options) { o.Alerts = []AlertRef{{"A", "warning"}, {"A", "warning"}} },
	} {
		o := DefaultOptions()
		mutate(&o)
		if _, err := All(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestExpressions: one expression per target and per query variable, with
// no Grafana interval variable left.
func TestExpressions(t *testing.T) {
	for name, o := range optionSets() {
		for _, g := range build(t, o) {
			want := 1 // the cluster variable
			for _, p := range panels(g.Dashboard) {
				want += len(p.Targets)
			}
			exprs := Expressions(g)
			if len(exprs) != want {
				t.Errorf("%s: %s: %d expressions, want %d", name, g.UID, len(exprs), want)
			}
			for _, e := range exprs {
				if strings.Contains(e, "$__") || strings.Contains(e, "label_values") {
					t.Errorf("%s: %s: %q is not plain PromQL", name, g.UID, e)
				}
			}
			if last := exprs[len(exprs)-1]; last != fmt.Sprintf("upgradeguard_collector_success{job=%q}", o.ExporterJob) {
				t.Errorf("%s: %s: variable selector %q", name, g.UID, last)
			}
		}
	}
}

func TestVariableSelector(t *testing.T) {
	for in, want := range map[string]string{
		`label_values(up{job="a"}, cluster)`:   `up{job="a"}`,
		`label_values(up{job=~"a,b"},cluster)`: `up{job=~"a,b"}`,
		`label_values(cluster)`:                `label_values(cluster)`,
		`query_result(max by (x) (up))`:        `query_result(max by (x) (up))`,
	} {
		if got := variableSelector(in); got != want {
			t.Errorf("variableSelector(%q) = %q, want %q", in, got, want)
		}
	}
}
