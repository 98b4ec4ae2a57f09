package dashboards

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/prometheus"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

type sample struct {
	Labels string  `json:"labels"`
	Value  float64 `json:"value"`
}

type exprTest struct {
	Expr     string   `json:"expr"`
	EvalTime string   `json:"eval_time"`
	Samples  []sample `json:"exp_samples"`
}

type series struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

// panelExprs returns the expressions of the targets of the panel titled
// title in the dashboard uid, as Prometheus would receive them for cluster c1.
func panelExprs(t *testing.T, gs []Generated, uid, title string) []string {
	t.Helper()
	for _, g := range gs {
		if g.UID != uid {
			continue
		}
		for _, p := range panels(g.Dashboard) {
			if p.Title == nil || *p.Title != title {
				continue
			}
			var out []string
			for _, tg := range p.Targets {
				e := intervalVars.Replace(tg.(prometheus.Dataquery).Expr)
				out = append(out, strings.ReplaceAll(e, "$cluster", "c1"))
			}
			return out
		}
	}
	t.Fatalf("%s has no panel %q", uid, title)
	return nil
}

// runPromtool writes one promtool test of the input series and expression
// tests, and fails t with promtool's report if any expression differs.
func runPromtool(t *testing.T, input []series, tests []exprTest) {
	t.Helper()
	bin := testbed.Promtool(t)
	for i := range tests {
		if tests[i].EvalTime == "" {
			tests[i].EvalTime = "10m"
		}
		if tests[i].Samples == nil {
			tests[i].Samples = []sample{}
		}
	}
	// JSON is YAML, which promtool reads.
	doc, err := json.MarshalIndent(map[string]any{
		"rule_files":          []string{},
		"evaluation_interval": "1m",
		"tests": []any{map[string]any{
			"interval":         "1m",
			"input_series":     input,
			"promql_expr_test": tests,
		}},
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "test.yml")
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// ug labels a series of the default exporter job in cluster c1 (or another).
func ug(metric, labels string) string {
	return metric + `{job="upgradeguard", cluster="c1", instance="10.0.0.9:9741", ` + labels + `}`
}

func quotaSeries(metric, cluster, code, value string) series {
	return series{
		Series: metric + `{job="upgradeguard", cluster="` + cluster + `", instance="10.0.0.9:9741", account="1", region="eu-west-1", service="ec2", quota_code="` + code + `", quota_name="` + code + ` name"}`,
		Values: value + "x20",
	}
}

func quotaLabels(code string) string {
	return `{account="1", region="eu-west-1", service="ec2", quota_code="` + code + `", quota_name="` + code + ` name"}`
}

func TestQuotaQueriesEvaluate(t *testing.T) {
	o := DefaultOptions()
	gs := build(t, o)
	const (
		limit = "upgradeguard_aws_quota_limit"
		usage = "upgradeguard_aws_quota_usage"
		surge = "upgradeguard_aws_quota_surge_demand"
		ratio = "upgradeguard_aws_quota_utilization_ratio"
	)
	input := []series{
		// L-1: computed usage and surge demand.
		quotaSeries(limit, "c1", "L-1", "100"), quotaSeries(usage, "c1", "L-1", "60"), quotaSeries(surge, "c1", "L-1", "16"),
		// L-2: usage known only from the utilization report, no surge.
		quotaSeries(limit, "c1", "L-2", "50"), quotaSeries(ratio, "c1", "L-2", "0.5"),
		// L-3: computed usage, no surge.
		quotaSeries(limit, "c1", "L-3", "10"), quotaSeries(usage, "c1", "L-3", "9"),
		// L-4: the next surge would exceed the limit.
		quotaSeries(limit, "c1", "L-4", "10"), quotaSeries(usage, "c1", "L-4", "8"), quotaSeries(surge, "c1", "L-4", "4"),
		// L-5: a limit without any usage: no headroom is claimed.
		quotaSeries(limit, "c1", "L-5", "5"),
		// Another cluster, which the dashboards must not mix in.
		quotaSeries(limit, "c2", "L-1", "100"), quotaSeries(usage, "c2", "L-1", "99"), quotaSeries(surge, "c2", "L-1", "50"),
	}
	table := panelExprs(t, gs, uidQuotas, "Quotas")
	if len(table) != 5 {
		t.Fatalf("quota table has %d queries, want limit, usage, surge, headroom, used after surge", len(table))
	}
	runPromtool(t, input, []exprTest{
		{Expr: table[0], Samples: []sample{{quotaLabels("L-1"), 100}, {quotaLabels("L-2"), 50}, {quotaLabels("L-3"), 10}, {quotaLabels("L-4"), 10}, {quotaLabels("L-5"), 5}}},
		{Expr: table[1], Samples: []sample{{quotaLabels("L-1"), 60}, {quotaLabels("L-2"), 25}, {quotaLabels("L-3"), 9}, {quotaLabels("L-4"), 8}}},
		{Expr: table[2], Samples: []sample{{quotaLabels("L-1"), 16}, {quotaLabels("L-4"), 4}}},
		{Expr: table[3], Samples: []sample{{quotaLabels("L-1"), 24}, {quotaLabels("L-2"), 25}, {quotaLabels("L-3"), 1}, {quotaLabels("L-4"), -2}}},
		{Expr: table[4], Samples: []sample{{quotaLabels("L-1"), 0.76}, {quotaLabels("L-2"), 0.5}, {quotaLabels("L-3"), 0.9}, {quotaLabels("L-4"), 1.2}}},
		{Expr: panelExprs(t, gs, uidQuotas, "Quotas a surge would exceed")[0], Samples: []sample{{"{}", 1}}},
		{Expr: panelExprs(t, gs, uidQuotas, "Quotas above 80%")[0], Samples: []sample{{"{}", 1}}}, // L-3 at 90%; L-4 at exactly 80% is not above
		{Expr: panelExprs(t, gs, uidQuotas, "Groups with unknown surge")[0], Samples: []sample{{"{}", 0}}},
	})
}

func TestClusterQueriesEvaluate(t *testing.T) {
	o := DefaultOptions()
	o.Alerts = []AlertRef{{"UpgradeguardNodeNotReady", "warning"}, {"UpgradeguardPDBAtZeroDisruptions", "warning"}}
	gs := build(t, o)
	node := func(metric, n, v string) series { return series{ug(metric, `node="`+n+`"`), v + "x20"} }
	info := func(n, version string) series {
		return series{ug("upgradeguard_node_info", `node="`+n+`", kubelet_version="`+version+`", instance_type="m5.large", zone="a", nodegroup="g", instance_id="i-`+n+`"`), "1x20"}
	}
	pdb := func(metric, name, v string) series {
		return series{ug(metric, `namespace="ns", pdb="`+name+`"`), v + "x20"}
	}
	input := []series{
		node("upgradeguard_node_ready", "n1", "1"), node("upgradeguard_node_ready", "n2", "0"), node("upgradeguard_node_ready", "n3", "1"),
		node("upgradeguard_node_ready", "other", "0"), // cluster c1 by label only below
		info("n1", "v1.36.3"), info("n2", "v1.36.3"), info("n3", "v1.37.2"),
		node("upgradeguard_node_unschedulable", "n1", "0"), node("upgradeguard_node_unschedulable", "n2", "1"), node("upgradeguard_node_unschedulable", "n3", "0"),
		node("upgradeguard_node_drainable", "n1", "1"), node("upgradeguard_node_drainable", "n2", "0"), node("upgradeguard_node_drainable", "n3", "1"),
		node("upgradeguard_node_heartbeat_age_seconds", "n1", "5"), node("upgradeguard_node_heartbeat_age_seconds", "n2", "30"),
		node("upgradeguard_node_lease_duration_seconds", "n1", "40"), node("upgradeguard_node_lease_duration_seconds", "n2", "40"),
		pdb("upgradeguard_pdb_disruptions_allowed", "a", "0"), pdb("upgradeguard_pdb_disruptions_allowed", "b", "1"),
		pdb("upgradeguard_pdb_current_healthy", "a", "2"), pdb("upgradeguard_pdb_current_healthy", "b", "3"),
		pdb("upgradeguard_pdb_desired_healthy", "a", "2"), pdb("upgradeguard_pdb_expected_pods", "a", "2"),
		{ug("upgradeguard_node_drain_blocked_pods", `node="n2", namespace="ns", pdb="a"`), "2x20"},
		{`kube_pod_status_phase{job="kube-state-metrics", cluster="c1", namespace="ns", pod="p1", phase="Pending"}`, "1x20"},
		{`kube_pod_status_phase{job="kube-state-metrics", cluster="c1", namespace="ns", pod="p1", phase="Running"}`, "0x20"},
		{`kube_pod_status_phase{job="kube-state-metrics", cluster="c1", namespace="ns", pod="p2", phase="Pending"}`, "0x20"},
		{`kube_pod_status_phase{job="kube-state-metrics", cluster="c2", namespace="ns", pod="p3", phase="Pending"}`, "1x20"},
		{`ALERTS{cluster="c1", alertname="UpgradeguardNodeNotReady", alertstate="firing", severity="warning", node="n2"}`, "1x20"},
		{`ALERTS{cluster="c1", alertname="UpgradeguardPDBAtZeroDisruptions", alertstate="pending", severity="warning"}`, "1x20"},
		{`ALERTS{cluster="c1", alertname="Watchdog", alertstate="firing", severity="none"}`, "1x20"},
	}
	// "other" is in cluster c2: rewrite its labels.
	input[3].Series = strings.Replace(input[3].Series, `cluster="c1"`, `cluster="c2"`, 1)

	stat := func(title string) string { return panelExprs(t, gs, uidCluster, title)[0] }
	pdbTable := panelExprs(t, gs, uidCluster, "PDBs at 0 disruptions now")
	if len(pdbTable) != 4 {
		t.Fatalf("PDB table has %d queries", len(pdbTable))
	}
	pdbA := `{namespace="ns", pdb="a"}`
	drains := panelExprs(t, gs, uidCluster, "Cordoned and drainable nodes")
	runPromtool(t, input, []exprTest{
		{Expr: stat("Nodes Ready"), Samples: []sample{{"{}", 2}}},
		{Expr: stat("Nodes NotReady"), Samples: []sample{{"{}", 1}}},
		{Expr: stat("Cordoned nodes"), Samples: []sample{{"{}", 1}}},
		{Expr: stat("Oldest heartbeat"), Samples: []sample{{"{}", 30}}},
		{Expr: stat("Drainable nodes"), Samples: []sample{{"{}", 2}}},
		{Expr: stat("PDBs at 0 disruptions"), Samples: []sample{{"{}", 1}}},
		{Expr: stat("Pending pods"), Samples: []sample{{"{}", 1}}},
		{Expr: stat("Firing alerts"), Samples: []sample{{"{}", 1}}},
		{Expr: stat("Nodes by kubelet version"), Samples: []sample{{`{kubelet_version="v1.36.3"}`, 2}, {`{kubelet_version="v1.37.2"}`, 1}}},
		{Expr: drains[2], Samples: []sample{{"{}", 1}}},
		{Expr: pdbTable[0], Samples: []sample{{pdbA, 0}}},
		{Expr: pdbTable[1], Samples: []sample{{pdbA, 2}}},
		{Expr: pdbTable[3], Samples: []sample{{pdbA, 2}}},
		{Expr: stat("Drains blocked by PDB"), Samples: []sample{{`{node="n2", namespace="ns", pdb="a"}`, 2}}},
		{Expr: stat("Heartbeat age vs lease duration (5 oldest)"), Samples: []sample{
			{`{job="upgradeguard", cluster="c1", instance="10.0.0.9:9741", node="n1"}`, 0.125},
			{`{job="upgradeguard", cluster="c1", instance="10.0.0.9:9741", node="n2"}`, 0.75},
		}},
		{Expr: stat("Firing alerts over time"), Samples: []sample{{`{alertname="UpgradeguardNodeNotReady", severity="warning"}`, 1}}},
	})
}

func TestCNIQueriesEvaluate(t *testing.T) {
	gs := build(t, DefaultOptions())
	cni := func(metric, labels, values string) series {
		return series{metric + `{job="aws-node", cluster="c1", instance="10.0.1.1:61678", node="n1"` + labels + `}`, values}
	}
	input := []series{
		cni("awscni_total_ip_addresses", "", "10x20"),
		cni("awscni_assigned_ip_addresses", "", "4x20"),
		cni("awscni_aws_api_latency_ms_sum", `, api="AssignPrivateIpAddresses", error="", status="200"`, "0+120x20"),
		cni("awscni_aws_api_latency_ms_count", `, api="AssignPrivateIpAddresses", error="", status="200"`, "0+2x20"),
		cni("awscni_no_available_ip_addresses", "", "0+6x20"),
		{`awscni_no_available_ip_addresses{job="aws-node", cluster="c1", instance="10.0.1.2:61678"}`, "3x20"},
		{`awscni_total_ip_addresses{job="aws-node", cluster="c2", instance="10.0.1.1:61678"}`, "99x20"},
	}
	inst := `{instance="10.0.1.1:61678", node="n1"}`
	runPromtool(t, input, []exprTest{
		{Expr: panelExprs(t, gs, uidCNI, "Warm IPs per node")[0], Samples: []sample{{inst, 6}}},
		{Expr: panelExprs(t, gs, uidCNI, "AWS API latency")[0], Samples: []sample{{`{api="AssignPrivateIpAddresses"}`, 60}}},
		{Expr: panelExprs(t, gs, uidCNI, "No-available-IP events")[0], Samples: []sample{{inst, 0.1}}},
	})
}

func TestConfiguredAlertQueriesEvaluate(t *testing.T) {
	o := DefaultOptions()
	o.Alerts = []AlertRef{{"UpgradeguardAWSQuotaHigh", "warning"}, {"UpgradeguardAWSQuotaHigh", "critical"}}
	gs := build(t, o)
	input := []series{
		{`ALERTS{cluster="c1", alertname="UpgradeguardAWSQuotaHigh", alertstate="firing", severity="warning", quota_code="L-1"}`, "1x20"},
		{`ALERTS{cluster="c1", alertname="UpgradeguardAWSQuotaHigh", alertstate="firing", severity="warning", quota_code="L-2"}`, "1x20"},
		{`ALERTS{cluster="c1", alertname="UpgradeguardAWSQuotaHigh", alertstate="pending", severity="critical", quota_code="L-1"}`, "1x20"},
		{`ALERTS{cluster="c2", alertname="UpgradeguardAWSQuotaHigh", alertstate="firing", severity="critical", quota_code="L-1"}`, "1x20"},
	}
	runPromtool(t, input, []exprTest{
		{Expr: panelExprs(t, gs, uidAlerts, "UpgradeguardAWSQuotaHigh (warning)")[0], Samples: []sample{{`{alertstate="firing"}`, 2}}},
		{Expr: panelExprs(t, gs, uidAlerts, "UpgradeguardAWSQuotaHigh (critical)")[0], Samples: []sample{{`{alertstate="pending"}`, 1}}},
	})
}
