package generate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/alerts"
	"github.com/upgradeguard/upgradeguard/dashboards"
	"github.com/upgradeguard/upgradeguard/internal/promqlcheck"
)

// committed is where the generated files are committed.
const committed = "../../deploy/generated"

// TestCommittedFilesAreUpToDate is CI's regeneration check: the files
// under deploy/generated are what `upgradeguard generate` writes now.
func TestCommittedFilesAreUpToDate(t *testing.T) {
	diffs, err := Diff(committed, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("deploy/generated is out of date; run `make generate`:\n  %s", strings.Join(diffs, "\n  "))
	}
}

func TestWriteThenDiffIsClean(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, DashboardsDir, "renamed.json")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if diffs, _ := Diff(dir, DefaultOptions()); len(diffs) == 0 {
		t.Fatal("an empty directory compared as up to date")
	}
	if _, err := Write(dir, DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("a dashboard no longer generated was left behind")
	}
	if diffs, err := Diff(dir, DefaultOptions()); err != nil || len(diffs) > 0 {
		t.Errorf("after Write: %v %v", diffs, err)
	}
	// A hand edit is caught, with the line.
	p := filepath.Join(dir, PrometheusRuleFile)
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), "severity: critical", "severity: warning", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	diffs, _ := Diff(dir, DefaultOptions())
	if len(diffs) != 1 || !strings.Contains(diffs[0], PrometheusRuleFile+": differs at line") {
		t.Errorf("hand edit: %v", diffs)
	}
}

// TestEveryExpressionReadsKnownMetrics parses every PromQL expression of the
// rules and the dashboards and checks every metric it reads against the
// exporter's own descriptors, the declared external metrics and the
// recording rules.
func TestEveryExpressionReadsKnownMetrics(t *testing.T) {
	o := DefaultOptions()
	var records []string
	for _, r := range alerts.Records(o.alerts()) {
		records = append(records, r.Name)
	}
	known, err := promqlcheck.Default(records...)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range alerts.Records(o.alerts()) {
		n++
		if err := known.Check(r.Expr); err != nil {
			t.Errorf("recording rule %s: %v", r.Name, err)
		}
	}
	for _, a := range alerts.List(o.alerts()) {
		n++
		if err := known.Check(a.Expr); err != nil {
			t.Errorf("alert %s: %v", a.Name, err)
		}
	}
	ds, err := o.Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		for _, e := range dashboards.Expressions(d) {
			n++
			if err := known.Check(e); err != nil {
				t.Errorf("dashboard %s: %v", d.UID, err)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d expressions checked", n)
	}
	t.Logf("%d expressions checked", n)
}

func TestBundleShapes(t *testing.T) {
	files, err := Files(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var pr monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(files[PrometheusRuleFile], &pr); err != nil {
		t.Fatalf("PrometheusRule: %v", err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		t.Errorf("PrometheusRule: kind %q, %d groups", pr.Kind, len(pr.Spec.Groups))
	}
	ds, err := DefaultOptions().Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(strings.TrimPrefix(string(files[ConfigMapsFile]), header), "---\n")
	if len(docs) != len(ds) {
		t.Fatalf("%d ConfigMaps for %d dashboards", len(docs), len(ds))
	}
	alertPanels := 0
	for i, doc := range docs {
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict([]byte(doc), &cm); err != nil {
			t.Fatalf("ConfigMap %d: %v", i, err)
		}
		if cm.Labels["grafana_dashboard"] != "1" || len(cm.Data) != 1 {
			t.Errorf("ConfigMap %s: labels %v, %d keys", cm.Name, cm.Labels, len(cm.Data))
		}
		js, ok := cm.Data[ds[i].FileName]
		if !ok || js != string(ds[i].JSON) || string(files[filepath.Join(DashboardsDir, ds[i].FileName)]) != js {
			t.Errorf("ConfigMap %s does not carry dashboard %s as generated", cm.Name, ds[i].UID)
		}
		var d struct {
			UID    string            `json:"uid"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal([]byte(js), &d); err != nil {
			t.Fatal(err)
		}
		if d.UID == "upgradeguard-alerts" {
			alertPanels = len(d.Panels)
		}
	}
	// The configured-alerts dashboard is generated from the alert list,
	// without the always-firing watchdog.
	if want := len(alerts.List(alerts.DefaultOptions())) - 1; alertPanels != want {
		t.Errorf("configured-alerts dashboard has %d panels, the rules %d alerts", alertPanels, want)
	}
}
