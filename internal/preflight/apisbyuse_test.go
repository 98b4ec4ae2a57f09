package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// fakeQuerier answers each query with a fixed vector; an unknown query is
// an error. TestUsageQueriesInPrometheus checks with promtool that
// Prometheus answers the real queries over usageSeries with exactly these
// vectors, so the fake says what the real engine says.
type fakeQuerier map[string]model.Vector

func (q fakeQuerier) Query(_ context.Context, qs string) (model.Vector, error) {
	v, ok := q[qs]
	if !ok {
		return nil, fmt.Errorf("unexpected query %s", qs)
	}
	return v, nil
}

func sample(v float64, kv ...string) *model.Sample {
	m := model.Metric{}
	for i := 0; i < len(kv); i += 2 {
		m[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(v)}
}

func gvrs(v float64, group, version, resource string, extra ...string) *model.Sample {
	return sample(v, append([]string{"group", group, "version", version, "resource", resource, "subresource", ""}, extra...)...)
}

// usageAnswers are Prometheus' answers to the queries over usageSeries at
// 2h, for cluster="prod" and windows of 1h and 2h.
func usageAnswers() map[time.Duration]fakeQuerier {
	out := map[time.Duration]fakeQuerier{}
	for _, w := range []time.Duration{time.Hour, 2 * time.Hour} {
		qs := NewUsageQueries(`cluster="prod"`, w)
		n := float64(w / time.Minute)
		dep := model.Vector{
			gvrs(2*n, "policy", "v1beta1", "poddisruptionbudgets", "removed_release", "1.25"),
			gvrs(2*n, "", "v1", "endpoints", "removed_release", ""),
			gvrs(n, "example.com", "v1beta1", "widgets", "removed_release", ""),
		}
		req := model.Vector{
			gvrs(2*n, "policy", "v1beta1", "poddisruptionbudgets"),
			gvrs(2*n, "", "v1", "endpoints"),
			gvrs(n, "example.com", "v1beta1", "widgets"),
			gvrs(5*n, "apps", "v1", "deployments"),
			gvrs(n, "storagemigration.k8s.io", "v1beta1", "storageversionmigrations"),
		}
		if w == 2*time.Hour {
			// The CronJob requests stopped at 10m: within 2h, not 1h.
			dep = append(dep, gvrs(10, "batch", "v1beta1", "cronjobs", "removed_release", "1.25"))
			req = append(req, gvrs(10, "batch", "v1beta1", "cronjobs"))
		}
		out[w] = fakeQuerier{qs.Present: {sample(7)}, qs.Deprecated: dep, qs.Requested: req}
	}
	return out
}

// Series over 2 hours at 1m: a removed version requested throughout, a
// deprecated built-in still requested, a deprecated CRD version still
// requested, a deprecated version requested long ago only (the gauge
// stays at 1, the counter is flat), and current versions.
const usageSeries = `
load 1m
  apiserver_requested_deprecated_apis{cluster="prod", instance="a", group="policy", version="v1beta1", resource="poddisruptionbudgets", subresource="", removed_release="1.25"} 1x120
  apiserver_requested_deprecated_apis{cluster="prod", instance="a", group="", version="v1", resource="endpoints", subresource="", removed_release=""} 1x120
  apiserver_requested_deprecated_apis{cluster="prod", instance="a", group="example.com", version="v1beta1", resource="widgets", subresource="", removed_release=""} 1x120
  apiserver_requested_deprecated_apis{cluster="prod", instance="a", group="batch", version="v1beta1", resource="cronjobs", subresource="", removed_release="1.25"} 1x120
  apiserver_request_total{cluster="prod", instance="a", verb="LIST", group="policy", version="v1beta1", resource="poddisruptionbudgets", subresource="", code="200"} 0+1x120
  apiserver_request_total{cluster="prod", instance="b", verb="WATCH", group="policy", version="v1beta1", resource="poddisruptionbudgets", subresource="", code="200"} 0+1x120
  apiserver_request_total{cluster="prod", instance="a", verb="GET", group="", version="v1", resource="endpoints", subresource="", code="200"} 0+2x120
  apiserver_request_total{cluster="prod", instance="a", verb="GET", group="example.com", version="v1beta1", resource="widgets", subresource="", code="200"} 0+1x120
  apiserver_request_total{cluster="prod", instance="a", verb="GET", group="batch", version="v1beta1", resource="cronjobs", subresource="", code="200"} 0+1x10 10x110
  apiserver_request_total{cluster="prod", instance="a", verb="GET", group="apps", version="v1", resource="deployments", subresource="", code="200"} 0+5x120
  apiserver_request_total{cluster="prod", instance="a", verb="GET", group="storagemigration.k8s.io", version="v1beta1", resource="storageversionmigrations", subresource="", code="200"} 0+1x120
  apiserver_request_total{cluster="staging", instance="s", verb="GET", group="extensions", version="v1beta1", resource="ingresses", subresource="", code="200"} 0+1x120
`

func TestCheckAPIsByUse(t *testing.T) {
	answers := usageAnswers()
	table := NewAPITable()
	table.AddCRDVersion(gvk("example.com/v1beta1", "Widget"), "widgets", "example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget", gvk("example.com/v1", "Widget"))
	fs := CheckAPIsByUse(context.Background(), answers[time.Hour], `cluster="prod"`, time.Hour, table, Version{1, 37})
	by := findingsBy(fs)

	pdb, ok := by["blocker policy/v1beta1 poddisruptionbudgets"]
	if !ok {
		t.Fatalf("no blocker for policy/v1beta1 poddisruptionbudgets: %+v", fs)
	}
	if pdb.RemovedRelease != "1.25" || pdb.Replacement != "policy/v1 PodDisruptionBudget" {
		t.Errorf("PDB finding %+v", pdb)
	}
	// Two API servers' requests are summed: 2 per minute over an hour.
	if !strings.Contains(pdb.Source, "120 requests in 1h") {
		t.Errorf("PDB source %q", pdb.Source)
	}
	// Deprecated with no removal announced, and requested by the control
	// plane itself: info that says so, not a warning nobody can clear.
	if f, ok := by["info v1 endpoints"]; !ok || f.Replacement != "discovery.k8s.io/v1 EndpointSlice" || !strings.Contains(f.Message, "no removal announced") ||
		!strings.Contains(f.Message, "endpointsadapter.go") || !strings.Contains(f.Message, "audit log") {
		t.Errorf("endpoints: %+v, %v", f, ok)
	}
	if _, ok := by["warning v1 endpoints"]; ok {
		t.Errorf("v1 endpoints is a warning")
	}
	if f, ok := by["warning example.com/v1beta1 widgets"]; !ok || f.Replacement != "example.com/v1 Widget" || !strings.Contains(f.Message, "custom resource") {
		t.Errorf("widgets: %+v, %v", f, ok)
	}
	// Not deprecated at the running release, so not in the gauge, but
	// deprecated at the target by the table.
	if f, ok := by["warning storagemigration.k8s.io/v1beta1 storageversionmigrations"]; !ok || f.RemovedRelease != "1.40" {
		t.Errorf("storageversionmigrations: %+v, %v", f, ok)
	}
	for _, f := range fs {
		switch {
		case strings.Contains(f.Object, "cronjobs"):
			t.Errorf("cronjobs were last requested over an hour ago: %+v", f)
		case strings.Contains(f.Object, "ingresses"):
			t.Errorf("the matchers select cluster prod only: %+v", f)
		case strings.Contains(f.Object, "deployments"):
			t.Errorf("apps/v1 is current: %+v", f)
		}
	}
	if info := by["info API requests"]; info.Message != "5 group/version/resources requested in the last 1h, 3 of them deprecated" {
		t.Errorf("info: %q", info.Message)
	}
	// With a 2h window the CronJob requests count again.
	fs = CheckAPIsByUse(context.Background(), answers[2*time.Hour], `cluster="prod"`, 2*time.Hour, table, Version{1, 37})
	if _, ok := findingsBy(fs)["blocker batch/v1beta1 cronjobs"]; !ok {
		t.Errorf("2h window: no cronjobs blocker: %+v", fs)
	}
	// At target 1.24 the PDB version is deprecated only.
	fs = CheckAPIsByUse(context.Background(), answers[time.Hour], `cluster="prod"`, time.Hour, table, Version{1, 24})
	if f, ok := findingsBy(fs)["warning policy/v1beta1 poddisruptionbudgets"]; !ok || f.RemovedRelease != "1.25" {
		t.Errorf("target 1.24: %+v", fs)
	}
}

func TestCheckAPIsByUseUnknown(t *testing.T) {
	// The matchers select nothing: no API server metrics is unknown, never
	// clean.
	qs := NewUsageQueries(`cluster="nowhere"`, time.Hour)
	fs := CheckAPIsByUse(context.Background(), fakeQuerier{qs.Present: {}}, `cluster="nowhere"`, time.Hour, NewAPITable(), Version{1, 37})
	if len(fs) != 1 || fs[0].Severity != Unknown || !strings.Contains(fs[0].Message, "is the API server scraped") {
		t.Errorf("findings %+v", fs)
	}
	fs = CheckAPIsByUse(context.Background(), failingQuerier{}, "", time.Hour, NewAPITable(), Version{1, 37})
	if len(fs) != 1 || fs[0].Severity != Unknown || !strings.Contains(fs[0].Message, "store down") {
		t.Errorf("findings %+v", fs)
	}
}

type failingQuerier struct{}

func (failingQuerier) Query(context.Context, string) (model.Vector, error) {
	return nil, errors.New("partial answer: store down")
}

// TestUsageQueriesInPrometheus runs the queries of CheckAPIsByUse over
// usageSeries in promtool's rule unit tests (Prometheus' own engine) and
// expects exactly the answers the fake querier gives: the join keeps only
// versions requested within the window, the matchers select the cluster,
// two API servers' requests add up.
func TestUsageQueriesInPrometheus(t *testing.T) {
	bin := testbed.Promtool(t)
	var series []any
	for _, line := range strings.Split(strings.TrimSpace(usageSeries), "\n")[1:] {
		line = strings.TrimSpace(line)
		i := strings.LastIndex(line, " ")
		series = append(series, map[string]any{"series": line[:i], "values": line[i+1:]})
	}
	var exprs []any
	for _, answers := range usageAnswers() {
		for q, vec := range answers {
			var exp []any
			for _, s := range vec {
				var ls []string
				for k, v := range s.Metric {
					if v != "" {
						ls = append(ls, fmt.Sprintf("%s=%q", k, v))
					}
				}
				sort.Strings(ls)
				exp = append(exp, map[string]any{"labels": "{" + strings.Join(ls, ", ") + "}", "value": float64(s.Value)})
			}
			if exp == nil {
				exp = []any{}
			}
			exprs = append(exprs, map[string]any{"expr": q, "eval_time": "2h", "exp_samples": exp})
		}
	}
	doc := map[string]any{
		"rule_files":          []string{},
		"evaluation_interval": "1m",
		"tests":               []any{map[string]any{"interval": "1m", "input_series": series, "promql_expr_test": exprs}},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "usage_test.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "test", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n%s", err, out, b)
	}
}

// TestJudgeUsageDeprecatedWithoutRemoval: a version deprecated with no
// removal announced is info (v1 componentstatuses, deprecated in 1.19); a
// deprecated version the API server reports of a group no release serves
// is a custom resource's whose CRD was not read, and stays a warning.
func TestJudgeUsageDeprecatedWithoutRemoval(t *testing.T) {
	table := NewAPITable()
	cases := []struct {
		u   usage
		sev Severity
	}{
		{usage{gvr: schemaGVR("", "v1", "componentstatuses"), requests: 3, deprecated: true}, Info},
		{usage{gvr: schemaGVR("", "v1", "componentstatuses"), requests: 3}, Info},
		{usage{gvr: schemaGVR("other.io", "v1beta1", "gadgets"), requests: 3, deprecated: true}, Warning},
		{usage{gvr: schemaGVR("policy", "v1beta1", "poddisruptionbudgets"), requests: 3, deprecated: true, removedRelease: "1.25"}, Warning},
	}
	for _, c := range cases {
		f, ok := judgeUsage(&c.u, table, Version{1, 24}, time.Hour)
		if !ok || f.Severity != c.sev {
			t.Errorf("%s (deprecated %v): %+v, %v; want %s", c.u.gvr, c.u.deprecated, f, ok, c.sev)
		}
		if strings.Contains(f.Message, "control plane") {
			t.Errorf("%s: no control plane component requests it: %q", c.u.gvr, f.Message)
		}
	}
}

func schemaGVR(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}
