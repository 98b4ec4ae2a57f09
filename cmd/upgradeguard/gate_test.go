package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// promFake answers instant queries from a list of series, choosing them by
// metric name only (the leading name or the __name__ regex of the query).
type promFake struct {
	mu     sync.Mutex
	series []string // JSON objects {"metric":{...},"value":[t,"v"]}
	hits   atomic.Int64
	srv    *httptest.Server
}

var nameRegexRE = regexp.MustCompile(`__name__=~"([^"]+)"`)

func newPromFake(t *testing.T) *promFake {
	f := &promFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r) // no /api/v1/stores: a Prometheus
			return
		}
		q := r.FormValue("query")
		var names *regexp.Regexp
		if m := nameRegexRE.FindStringSubmatch(q); m != nil {
			names = regexp.MustCompile("^(?:" + m[1] + ")$")
		} else {
			q = strings.TrimPrefix(q, "increase(")
			names = regexp.MustCompile("^" + regexp.QuoteMeta(q[:strings.IndexAny(q, "{[")]) + "$")
		}
		f.mu.Lock()
		var out []string
		for _, s := range f.series {
			var v struct{ Metric map[string]string }
			_ = json.Unmarshal([]byte(s), &v)
			if names.MatchString(v.Metric["__name__"]) {
				out = append(out, s)
			}
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, strings.Join(out, ","))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *promFake) set(readyC string, alerts ...string) {
	s := func(name, value string, kv ...string) string {
		m := map[string]string{"__name__": name, "job": "upgradeguard"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		b, _ := json.Marshal(map[string]any{"metric": m, "value": []any{1, value}})
		return string(b)
	}
	ss := []string{
		s("up", "1", "instance", "x:9741"),
		s("upgradeguard_collector_success", "1", "collector", "nodes"),
		s("upgradeguard_collector_success", "1", "collector", "pdb"),
		s("upgradeguard_collector_success", "1", "collector", "workloads"),
		s("upgradeguard_service_endpoints", "1", "namespace", "default", "service", "kubernetes", "ready", "true"),
	}
	for _, n := range []string{"node-a", "node-c"} {
		ready := "1"
		if n == "node-c" {
			ready = readyC
		}
		ss = append(ss,
			s("upgradeguard_node_ready", ready, "node", n),
			s("upgradeguard_node_heartbeat_age_seconds", "5", "node", n),
			s("upgradeguard_node_lease_duration_seconds", "40", "node", n),
			s("upgradeguard_node_ready_transitions_total", "0", "node", n),
			s("upgradeguard_node_drainable", "1", "node", n),
			s("upgradeguard_node_unmanaged_pods", "0", "node", n),
			s("upgradeguard_node_local_storage_pods", "0", "node", n),
		)
	}
	for _, a := range alerts {
		ss = append(ss, s("ALERTS", "1", "alertname", a, "alertstate", "firing", "severity", "warning"))
	}
	// The bundle's watchdog, which the default policy requires.
	ss = append(ss, s("ALERTS", "1", "alertname", "UpgradeGuardWatchdog", "alertstate", "firing", "severity", "none"))
	for _, n := range []string{"node-a", "node-c"} {
		ss = append(ss, s("upgradeguard_node_info", "1", "node", n, "nodegroup", "ng-1"))
	}
	f.mu.Lock()
	f.series = ss
	f.mu.Unlock()
}

// runGate runs the command and returns its exit status, stdout and stderr.
func runGate(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	oldOut, oldErr := gateStdout, gateStderr
	gateStdout, gateStderr = &out, &errOut
	defer func() { gateStdout, gateStderr = oldOut, oldErr }()
	code := run(append([]string{"--log.level=error"}, args...))
	return code, out.String(), errOut.String()
}

// noAWS turns off the rows that read the AWS collectors' series, which
// this fake exporter does not serve: the capacity rows and nodes/groups
// (UNKNOWN without them).
const noAWS = "capacity: {ips: false, quotas: false}\nnodes: {groups: false}\n"

func TestGateCheck(t *testing.T) {
	f := newPromFake(t)
	f.set("1")
	policy := writeFile(t, "gate.yaml", noAWS+"interval: 10ms\n")
	base := []string{"gate", "check", "--query.url", f.srv.URL, "--policy", policy, "--node", "node-a"}

	code, out, errOut := runGate(t, base...)
	if code != 0 || !strings.Contains(out, "verdict GO  node node-a") || !strings.Contains(out, "drain/pdb") {
		t.Fatalf("healthy: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "passed 1 of 2 consecutive evaluations") {
		t.Errorf("check did not evaluate twice: %s", errOut)
	}
	code, out, _ = runGate(t, append(base, "--output", "json", "--consecutive", "1")...)
	var j struct {
		Verdict string
		Passed  bool
		Checks  []map[string]string
	}
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || j.Verdict != "GO" || !j.Passed || len(j.Checks) < 8 {
		t.Errorf("json: exit %d err %v %+v\n%s", code, err, j, out)
	}

	f.set("0") // node-c not ready
	code, out, errOut = runGate(t, base...)
	if code != 1 || !strings.Contains(out, "verdict WAIT") || !strings.Contains(out, "not ready: node-c") {
		t.Errorf("node-c not ready: exit %d\n%s", code, out)
	}
	// A WAIT is the gate's answer, not an error: nothing at level error.
	if strings.Contains(errOut, "level=ERROR") {
		t.Errorf("WAIT logged as an error:\n%s", errOut)
	}

	// --nodegroup: every node of the group is judged by the drain check.
	f.set("1")
	code, out, errOut = runGate(t, "gate", "check", "--query.url", f.srv.URL, "--policy", policy, "--nodegroup", "ng-1", "--consecutive", "1")
	if code != 0 || !strings.Contains(out, "verdict GO  nodegroup ng-1") || !strings.Contains(out, "2 of 2 nodes of group ng-1 pass") {
		t.Errorf("--nodegroup: exit %d\n%s\n%s", code, out, errOut)
	}

	// A baseline taken while an alert fires lets that alert pass.
	f.set("1", "DiskFilling")
	if code, out, _ := runGate(t, base...); code != 1 || !strings.Contains(out, "DiskFilling") {
		t.Errorf("firing alert: exit %d\n%s", code, out)
	}
	bl := writeFile(t, "baseline.json", "")
	if code, _, errOut := runGate(t, append(base, "--write-baseline", bl)...); code != 0 || !strings.Contains(errOut, "1 firing alerts written") {
		t.Fatalf("write-baseline: exit %d %s", code, errOut)
	}
	if code, out, _ := runGate(t, append(base, "--baseline", bl)...); code != 0 || !strings.Contains(out, "firing since the baseline") {
		t.Errorf("with the baseline: exit %d\n%s", code, out)
	}
}

// TestGateCheckOutputColumns: the default table is for people (check,
// status, value, why: no PromQL), -o wide adds each check's threshold and
// whole query, as kubectl's -o wide, and -o json keeps the queries.
func TestGateCheckOutputColumns(t *testing.T) {
	f := newPromFake(t)
	f.set("1")
	policy := writeFile(t, "gate.yaml", noAWS)
	base := []string{"gate", "check", "--query.url", f.srv.URL, "--policy", policy, "--node", "node-a", "--consecutive", "1"}
	// A selector every nodes query holds, and the drain query's node.
	const query = `upgradeguard_node_ready`

	code, out, errOut := runGate(t, base...)
	if code != 0 || !strings.Contains(out, "verdict GO  node node-a") {
		t.Fatalf("default: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || strings.Join(strings.Fields(lines[1]), " ") != "CHECK STATUS VALUE WHY" {
		t.Errorf("default header: %q\n%s", lines[min(1, len(lines)-1)], out)
	}
	for _, unwanted := range []string{query, "QUERY", "THRESHOLD", `job=~"upgradeguard.*"`} {
		if strings.Contains(out, unwanted) {
			t.Errorf("default table shows %q:\n%s", unwanted, out)
		}
	}

	code, out, errOut = runGate(t, append(base, "-o", "wide")...)
	if code != 0 || !strings.Contains(out, "verdict GO  node node-a") {
		t.Fatalf("wide: exit %d\n%s\n%s", code, out, errOut)
	}
	lines = strings.Split(out, "\n")
	if len(lines) < 2 || strings.Join(strings.Fields(lines[1]), " ") != "CHECK STATUS VALUE WHY THRESHOLD QUERY" {
		t.Errorf("wide header: %q\n%s", lines[min(1, len(lines)-1)], out)
	}
	if !strings.Contains(out, query) || !strings.Contains(out, `node="node-a"`) {
		t.Errorf("wide table lacks the queries:\n%s", out)
	}

	code, out, _ = runGate(t, append(base, "-o", "json")...)
	if code != 0 || !strings.Contains(out, `"query":`) || !strings.Contains(out, query) {
		t.Errorf("json lacks the queries: exit %d\n%s", code, out)
	}
}

func TestGateUsageErrors(t *testing.T) {
	f := newPromFake(t)
	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"no URL", []string{"gate", "check"}, ""},
		{"bad policy field", []string{"gate", "check", "--query.url", f.srv.URL, "--policy", writeFile(t, "p.yaml", "nodes:\n  window: 5m\n")}, `line 2: unknown field "window" in nodes`},
		{"missing policy", []string{"gate", "wait", "--query.url", f.srv.URL, "--policy", "/nonexistent/gate.yaml"}, "/nonexistent/gate.yaml"},
		{"bad header", []string{"gate", "check", "--query.url", f.srv.URL, "--header", "X-Scope-OrgID"}, `--header "X-Scope-OrgID"`},
		{"URL without scheme", []string{"gate", "check", "--query.url", "thanos:9090"}, "want http:// or https://"},
		{"bad output", []string{"gate", "check", "--query.url", f.srv.URL, "-o", "yaml"}, ""},
		{"bad baseline", []string{"gate", "check", "--query.url", f.srv.URL, "--baseline", writeFile(t, "b.json", `{"alerts":[{"labels":{}}]}`)}, "alerts[0] has no alertname"},
		{"no subcommand", []string{"gate"}, ""},
		{"node and nodegroup", []string{"gate", "wait", "--query.url", f.srv.URL, "--node", "a", "--nodegroup", "ng-1"}, "--node and --nodegroup: give one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runGate(t, c.args...)
			if code != 2 || !strings.Contains(errOut, c.msg) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, c.msg)
			}
		})
	}
	if f.hits.Load() != 0 {
		t.Errorf("%d requests made on bad usage", f.hits.Load())
	}
}

func TestGateWait(t *testing.T) {
	f := newPromFake(t)
	f.set("0")
	policy := writeFile(t, "gate.yaml", noAWS)
	time.AfterFunc(500*time.Millisecond, func() { f.set("1") })
	begin := time.Now()
	code, out, errOut := runGate(t, "gate", "wait", "--query.url", f.srv.URL, "--policy", policy, "--interval", "100ms", "--timeout", "60s")
	if code != 0 || !strings.Contains(out, "verdict GO") || !strings.Contains(out, "2 consecutive passing") || !strings.Contains(errOut, "gate: WAIT: nodes/ready FAIL") {
		t.Fatalf("wait until node-c is ready: exit %d after %s\n%s\n%s", code, time.Since(begin), out, errOut)
	}

	f.set("0")
	code, out, _ = runGate(t, "gate", "wait", "--query.url", f.srv.URL, "--policy", policy, "--interval", "50ms", "--timeout", "400ms")
	if code != 1 || !strings.Contains(out, "verdict STOP") {
		t.Errorf("timeout: exit %d\n%s", code, out)
	}

	// Unreachable at the deadline: 3, for check and wait.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	code, out, _ = runGate(t, "gate", "wait", "--query.url", dead.URL, "--policy", policy, "--interval", "50ms", "--timeout", "300ms", "--query.kind", "prometheus")
	if code != 3 || !strings.Contains(out, "verdict STOP") {
		t.Errorf("unreachable wait: exit %d\n%s", code, out)
	}
	if code, _, _ := runGate(t, "gate", "check", "--query.url", dead.URL, "--policy", policy); code != 3 {
		t.Errorf("unreachable check: exit %d", code)
	}
}
