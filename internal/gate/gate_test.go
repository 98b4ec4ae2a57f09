package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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
	_ = WriteTable(&b, e, TableWide)
	return b.String()
}

// rowCase changes the healthy fake data and says what one row must show.
type rowCase struct {
	value string   // the new value of the series matching kv; "" deletes them
	kv    []string // labels (a subset) of the series to change
	row   string
	st    Status // FAIL or UNKNOWN
	why   string // part of the row's Why
}

// runRowCases evaluates each case against the healthy data changed by it
// (for node) and checks the row; none may be GO.
func runRowCases(t *testing.T, f *fakeProm, g *Gate, node string, cases []rowCase) {
	t.Helper()
	for _, c := range cases {
		f.set(replace(healthy(), c.value, c.kv...)...)
		e := eval(t, g, node)
		r := row(t, e, c.row)
		if r.Status != c.st || !strings.Contains(r.Why, c.why) || e.Verdict == GO {
			t.Errorf("%v = %q: %s %s %q (verdict %s), want %s with %q", c.kv, c.value, c.row, r.Status, r.Why, e.Verdict, c.st, c.why)
		}
	}
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
	// monitoring, alerts, nodes (2), drain, capacity (2), availability
	// (2: now and the window) and the store list.
	if e.Queries != 10 {
		t.Errorf("%d requests, want 10", e.Queries)
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
	if rec["verdict"] != "GO" || rec["node"] != "node-b" || rec["queries"] != 10.0 {
		t.Errorf("audit record %v", rec)
	}
	// Without a node, drain is skipped and node_info is not needed.
	e = eval(t, g, "")
	if e.Verdict != GO {
		t.Fatalf("without node: %s\n%s", e.Verdict, dump(e))
	}
	wantRow(t, e, "drain", Skip, "no node")
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
}

func TestDisabledChecksAreShownSkipped(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	f.set(healthy()...)
	off := testPolicy(t, "capacity: {ips: false, quotas: false}\nnodes: {enabled: false}\ndrain: {enabled: false}\nalerts: {enabled: false}")
	g, _ := newGate(t, f, off)
	e := eval(t, g, "node-b")
	for _, n := range []string{"capacity/ips", "capacity/quotas", "nodes", "drain", "alerts"} {
		wantRow(t, e, n, Skip, "disabled in the policy")
	}
	wantRow(t, e, "nodes", Skip, "nodes.enabled: false")
}

func TestRegistryOrder(t *testing.T) {
	var names []string
	last := -1
	for _, d := range checks() {
		if d.Order <= last {
			t.Errorf("check %q at order %d after %d", d.Name, d.Order, last)
		}
		last = d.Order
		if d.Enabled != nil && d.Switch == "" {
			t.Errorf("check %q can be turned off but names no policy field", d.Name)
		}
		names = append(names, d.Name)
	}
	// The rows of an evaluation follow the registry: the monitoring first,
	// the custom checks last.
	if len(names) < 2 || names[0] != "monitoring" || names[len(names)-1] != "custom" {
		t.Errorf("registered checks %v", names)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second check at order 10 did not panic")
		}
	}()
	registerCheck(checkDef{Name: "twice", Order: 10, Run: (*Gate).checkMonitoring})
}
