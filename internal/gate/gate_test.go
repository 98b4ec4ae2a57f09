package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testPolicy(t *testing.T, yml string) Policy {
	t.Helper()
	p, err := ParsePolicy([]byte("matchers: 'cluster=\"prod\"'\n" + yml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newGate(t *testing.T, f *fakeProm, p Policy, mod ...func(*Config)) (*Gate, *bytes.Buffer) {
	t.Helper()
	cfg := Config{URL: f.srv.URL, QueryTimeout: 2 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	var logs bytes.Buffer
	g, err := New(cfg, p, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return g, &logs
}

func eval(t *testing.T, g *Gate, node string) Evaluation {
	t.Helper()
	e, err := g.Evaluate(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func row(t *testing.T, e Evaluation, name string) CheckResult {
	t.Helper()
	for _, c := range e.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no row %q in %+v", name, e.Checks)
	return CheckResult{}
}

func wantRow(t *testing.T, e Evaluation, name string, st Status, whyContains string) {
	t.Helper()
	r := row(t, e, name)
	if r.Status != st || !strings.Contains(r.Why, whyContains) {
		t.Errorf("%s: %s %q, want %s containing %q", name, r.Status, r.Why, st, whyContains)
	}
	if st != Pass && st != Skip && e.Verdict == GO {
		t.Errorf("verdict GO with %s %s", name, st)
	}
}

func dump(e Evaluation) string {
	var b bytes.Buffer
	_ = WriteTable(&b, e, 0)
	return b.String()
}

func TestHealthyClusterThroughThanosIsGO(t *testing.T) {
	f := newFake(t)
	f.set(healthy()...)
	f.stores = storesJSON("", "")
	g, logs := newGate(t, f, testPolicy(t, ""))
	e := eval(t, g, "node-b")
	if e.Verdict != GO || !e.Passed() {
		t.Fatalf("verdict %s, want GO:\n%s", e.Verdict, dump(e))
	}
	// monitoring, alerts, nodes (2), drain, capacity (2) and the store list.
	if e.Queries != 8 {
		t.Errorf("%d requests, want 8", e.Queries)
	}
	for _, c := range e.Checks {
		if c.Status != Pass {
			t.Errorf("%s: %s %s", c.Name, c.Status, c.Why)
		}
	}
	for _, form := range f.forms {
		if form["dedup"][0] != "true" || form["partial_response"][0] != "true" || form["time"][0] == "" || form["timeout"][0] != "2s" {
			t.Errorf("query form %v: want dedup, partial_response, time and timeout", form)
		}
		if q := form["query"][0]; !strings.HasPrefix(q, "ALERTS") && !strings.Contains(q, `job=~"upgradeguard.*"`) {
			t.Errorf("query %s lacks the job matcher", q)
		}
		if q := form["query"][0]; !strings.Contains(q, `cluster="prod"`) {
			t.Errorf("query %s lacks the policy's matchers", q)
		}
	}
	// One audit record per evaluation.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log records, want 1: %s", len(lines), logs)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["verdict"] != "GO" || rec["node"] != "node-b" || rec["queries"] != 8.0 {
		t.Errorf("audit record %v", rec)
	}
	// Without a node, drain is skipped and node_info is not needed.
	e = eval(t, g, "")
	if e.Verdict != GO {
		t.Fatalf("without node: %s\n%s", e.Verdict, dump(e))
	}
	wantRow(t, e, "drain", Skip, "no node")
}

func TestFiringAlerts(t *testing.T) {
	f := newFake(t)
	base := healthy()
	f.stores = storesJSON("", "")
	firing := ser("1", "__name__", "ALERTS", "alertname", "KubeNodeNotReady", "alertstate", "firing", "severity", "warning", "node", "node-c", "cluster", "prod")
	f.set(append(base, firing)...)
	g, _ := newGate(t, f, testPolicy(t, ""))
	e := eval(t, g, "node-a")
	wantRow(t, e, "alerts", Fail, "KubeNodeNotReady{severity=warning,node=node-c}")
	if e.Verdict != WAIT || len(e.Reasons()) != 1 {
		t.Errorf("verdict %s reasons %q", e.Verdict, e.Reasons())
	}
	// Another cluster's alert does not count.
	other := ser("1", "__name__", "ALERTS", "alertname", "KubeNodeNotReady", "alertstate", "firing", "severity", "critical", "cluster", "staging")
	pending := ser("1", "__name__", "ALERTS", "alertname", "Slow", "alertstate", "pending", "severity", "critical", "cluster", "prod")
	f.set(append(base, other, pending)...)
	if e := eval(t, g, "node-a"); e.Verdict != GO {
		t.Errorf("other cluster's alert and a pending one: %s\n%s", e.Verdict, dump(e))
	}
	// Pending alerts block when the policy says so.
	gp, _ := newGate(t, f, testPolicy(t, "alerts: {pending: true}"))
	wantRow(t, eval(t, gp, "node-a"), "alerts", Fail, "Slow{severity=critical,alertstate=pending}")

	// A baseline tolerates an alert already firing, unless its severity changes.
	f.set(append(base, firing)...)
	bl := &Baseline{Alerts: []BaselineAlert{{Labels: map[string]string{"alertname": "KubeNodeNotReady", "severity": "warning", "node": "node-c", "cluster": "prod", "replica": "r0"}}}}
	path := filepath.Join(t.TempDir(), "baseline.json")
	if err := WriteBaseline(path, bl); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) { c.Baseline = loaded })
	e = eval(t, gb, "node-a")
	if e.Verdict != GO {
		t.Errorf("baseline alert blocks: %s", dump(e))
	}
	wantRow(t, e, "alerts", Pass, "firing since the baseline, not blocking: KubeNodeNotReady")
	escalated := firing
	escalated.labels = map[string]string{}
	for k, v := range firing.labels {
		escalated.labels[k] = v
	}
	escalated.labels["severity"] = "critical"
	f.set(append(base, escalated)...)
	wantRow(t, eval(t, gb, "node-a"), "alerts", Fail, `severity "warning" in the baseline, now "critical"`)

	// The Watchdog, when required, must be present.
	gw, _ := newGate(t, f, testPolicy(t, "monitoring: {watchdog: Watchdog}"))
	f.set(base...)
	wantRow(t, eval(t, gw, "node-a"), "monitoring/watchdog", Pass, "")
	f.set(replace(base, "", "alertname", "Watchdog")...)
	wantRow(t, eval(t, gw, "node-a"), "monitoring/watchdog", Unknown, "absent")
}

func TestEmptyResultsAreNeverGO(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	e := eval(t, g, "node-a") // no series at all
	if e.Verdict == GO {
		t.Fatalf("GO on an empty monitoring:\n%s", dump(e))
	}
	for _, name := range []string{"monitoring/up", "monitoring/collectors", "nodes/ready", "drain/pdb", "capacity/ips", "capacity/quotas"} {
		if r := row(t, e, name); r.Status != Unknown {
			t.Errorf("%s on empty data: %s, want UNKNOWN", name, r.Status)
		}
	}
	wantRow(t, e, "monitoring/up", Unknown, "no up series")
	// Only ALERTS empty is a pass: no alert fires.
	wantRow(t, e, "alerts", Pass, "")

	// Series missing one by one.
	for _, c := range []struct {
		drop     []string
		row, why string
	}{
		{[]string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c"}, "nodes/heartbeat", "node-c has no Lease heartbeat series"},
		{[]string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-a"}, "nodes/transitions", "node-a (no transitions counter"},
		{[]string{"__name__", "upgradeguard_node_unmanaged_pods", "node", "node-a"}, "drain/unmanaged", "no upgradeguard_node_unmanaged_pods"},
		{[]string{"__name__", "upgradeguard_collector_success", "collector", "pdb"}, "monitoring/collectors", "required collectors not reporting: pdb"},
		{[]string{"collector", "cni", "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds"}, "monitoring/aws-fresh", "cni has no successful refresh yet"},
		{[]string{"__name__", "upgradeguard_aws_asg_surge_ips"}, "capacity/ips", "no upgradeguard_aws_asg_surge_ips"},
		{[]string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1a"}, "capacity/ips", `no upgradeguard_zone_available_ips for zone "eu-west-1a"`},
		{[]string{"__name__", "upgradeguard_aws_quota_limit"}, "capacity/quotas", "no limit"},
		{[]string{"__name__", "upgradeguard_aws_quota_surge_demand"}, "capacity/quotas", "no upgradeguard_aws_quota_surge_demand series"},
	} {
		f.set(replace(healthy(), "", c.drop...)...)
		wantRow(t, eval(t, g, "node-a"), c.row, Unknown, c.why)
	}
	// Unknown node.
	f.set(healthy()...)
	e = eval(t, g, "node-zz")
	wantRow(t, e, "drain/pdb", Unknown, `no upgradeguard_node_drainable for node "node-zz"`)
	wantRow(t, e, "capacity/ips", Unknown, `zone of node "node-zz" is unknown`)
}

func TestNaNIsUnknown(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	p := testPolicy(t, `
custom:
- name: etcd-ok
  query: etcd_ok
  min: 1
- name: no-crashloops
  query: crashloops
  empty: true
- name: ratio
  query: scalar(ratio)
  max: 0.5
`)
	g, _ := newGate(t, f, p)
	for _, c := range []struct {
		kv       []string
		row, why string
	}{
		{[]string{"__name__", "upgradeguard_node_ready", "node", "node-b"}, "nodes/ready", "readiness unknown: node-b"},
		{[]string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-b"}, "nodes/heartbeat", "node-b NaN"},
		{[]string{"__name__", "upgradeguard_node_drainable", "node", "node-b"}, "drain/pdb", "NaN"},
		{[]string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"}, "capacity/ips", "eu-west-1b NaN"},
		{[]string{"__name__", "upgradeguard_aws_quota_usage"}, "capacity/quotas", "NaN"},
		{[]string{"__name__", "up"}, "monitoring/up", "NaN"},
	} {
		f.set(replace(healthy(), "NaN", c.kv...)...)
		f.custom = map[string]string{
			"etcd_ok":       `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"member":"a"},"value":[1,"NaN"]}]}}`,
			"crashloops":    `{"status":"success","data":{"resultType":"vector","result":[]}}`,
			"scalar(ratio)": `{"status":"success","data":{"resultType":"scalar","result":[1,"0.25"]}}`,
		}
		e := eval(t, g, "node-b")
		wantRow(t, e, c.row, Unknown, c.why)
		wantRow(t, e, "custom/etcd-ok", Unknown, "NaN")
		wantRow(t, e, "custom/no-crashloops", Pass, "")
		wantRow(t, e, "custom/ratio", Pass, "")
	}
	// A custom check with thresholds and an empty result is UNKNOWN; with
	// empty: false it fails; a value beyond the threshold fails.
	f.set(healthy()...)
	f.custom["etcd_ok"] = `{"status":"success","data":{"resultType":"vector","result":[]}}`
	f.custom["crashloops"] = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"x"},"value":[1,"3"]}]}}`
	f.custom["scalar(ratio)"] = `{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}`
	e := eval(t, g, "node-b")
	wantRow(t, e, "custom/etcd-ok", Unknown, "empty result")
	wantRow(t, e, "custom/no-crashloops", Fail, `{pod="x"} 3`)
	wantRow(t, e, "custom/ratio", Fail, "+Inf")
}

func TestFailingChecks(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	blocked := append(replace(healthy(), "0", "__name__", "upgradeguard_node_drainable", "node", "node-b"),
		ser("2", "__name__", "upgradeguard_node_drain_blocked_pods", "node", "node-b", "namespace", "shop", "pdb", "frozen", "job", "upgradeguard", "cluster", "prod"))
	f.set(blocked...)
	// Without the PDB's allowance, whether the drain progresses is unknown.
	wantRow(t, eval(t, g, "node-b"), "drain/pdb", Unknown, "no upgradeguard_pdb_disruptions_allowed for shop/frozen")
	allowed := func(v string) series {
		return ser(v, "__name__", "upgradeguard_pdb_disruptions_allowed", "namespace", "shop", "pdb", "frozen", "job", "upgradeguard", "cluster", "prod")
	}
	f.set(append(blocked, allowed("0"))...)
	wantRow(t, eval(t, g, "node-b"), "drain/pdb", Fail, "shop/frozen blocks 2 pods and allows 0 disruptions")
	// A PDB that lets one pod go at a time: the drain progresses in steps,
	// unless the policy wants the node drainable in one go.
	f.set(append(blocked, allowed("1"))...)
	wantRow(t, eval(t, g, "node-b"), "drain/pdb", Pass, "shop/frozen allows 1 at a time, 2 pods wait")
	strict, _ := newGate(t, f, testPolicy(t, "drain:\n  all_at_once: true\n"))
	wantRow(t, eval(t, strict, "node-b"), "drain/pdb", Fail, "shop/frozen blocks 2 pods")
	f.set(blocked...)
	if e := eval(t, g, "node-a"); e.Verdict != GO {
		t.Errorf("node-a is not blocked by node-b's PDB: %s", dump(e))
	}
	for _, c := range []struct {
		value    string
		kv       []string
		row, why string
	}{
		{"0", []string{"__name__", "up"}, "monitoring/up", "exporter target down: 10.0.0.9:9741"},
		{"0", []string{"collector", "pdb", "__name__", "upgradeguard_collector_success"}, "monitoring/collectors", "failing (serving stale data): pdb"},
		{"1000", []string{"collector", "cni", "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds"}, "monitoring/aws-fresh", "AWS data stale: cni/eu-west-1"},
		{strconv.FormatInt(time.Now().Add(-4*time.Hour).Unix(), 10), []string{"collector", "awsquota_limits", "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds"}, "monitoring/aws-fresh", "AWS data stale: awsquota_limits/eu-west-1 4h0m"},
		{"0", []string{"__name__", "upgradeguard_node_ready", "node", "node-c"}, "nodes/ready", "not ready: node-c"},
		{"55", []string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c"}, "nodes/heartbeat", "node-c 55s old (lease 40s)"},
		{"1.2", []string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-c"}, "nodes/transitions", "node-c (1.2)"},
		{"2.1", []string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-new"}, "nodes/transitions", "node-new (2.1)"},
		{"2", []string{"__name__", "upgradeguard_node_unmanaged_pods", "node", "node-b"}, "drain/unmanaged", "2 pods without a controller"},
		{"1", []string{"__name__", "upgradeguard_node_local_storage_pods", "node", "node-b"}, "drain/local-storage", "emptyDir"},
		{"17", []string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"}, "capacity/ips", "eu-west-1b has 17 free"},
		{"60", []string{"__name__", "upgradeguard_aws_quota_usage"}, "capacity/quotas", "usage 60 + surge 8 > 1 of limit 64"},
		{"2", []string{"__name__", "upgradeguard_aws_surge_unresolved_groups"}, "capacity/quotas", "lower bound"},
	} {
		f.set(replace(healthy(), c.value, c.kv...)...)
		e := eval(t, g, "node-b")
		r := row(t, e, c.row)
		if (r.Status != Fail && r.Status != Unknown) || !strings.Contains(r.Why, c.why) || e.Verdict == GO {
			t.Errorf("%s = %s: %s %q (verdict %s), want FAIL or UNKNOWN with %q", c.row, c.value, r.Status, r.Why, e.Verdict, c.why)
		}
	}
	// Options that accept what would fail.
	lenient := testPolicy(t, "drain: {allow_unmanaged_pods: true, allow_local_storage_pods: true}\ncapacity: {allow_unresolved_groups: true}")
	gl, _ := newGate(t, f, lenient)
	ss := replace(healthy(), "2", "__name__", "upgradeguard_node_unmanaged_pods", "node", "node-b")
	ss = replace(ss, "1", "__name__", "upgradeguard_node_local_storage_pods", "node", "node-b")
	ss = replace(ss, "2", "__name__", "upgradeguard_aws_surge_unresolved_groups")
	f.set(ss...)
	if e := eval(t, gl, "node-b"); e.Verdict != GO {
		t.Errorf("lenient policy: %s", dump(e))
	}
	// A node created within the window may have had its first Ready.
	f.set(replace(healthy(), "1.4", "__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-new")...)
	if e := eval(t, g, "node-b"); e.Verdict != GO {
		t.Errorf("a new node's first Ready blocks: %s", dump(e))
	}
	// Checks turned off are shown as skipped, not hidden.
	off := testPolicy(t, "capacity: {ips: false, quotas: false}\nnodes: {enabled: false}\ndrain: {enabled: false}\nalerts: {enabled: false}")
	go2, _ := newGate(t, f, off)
	e := eval(t, go2, "node-b")
	for _, n := range []string{"capacity/ips", "capacity/quotas", "nodes", "drain", "alerts"} {
		wantRow(t, e, n, Skip, "disabled in the policy")
	}
}
