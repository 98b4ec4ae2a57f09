package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted returns evaluations that pass or fail in a given order, the
// last one repeated.
type scripted struct {
	mu    sync.Mutex
	pass  []bool
	calls int
}

func (s *scripted) Evaluate(ctx context.Context, node string) (Evaluation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Evaluation{}, err
	}
	p := s.pass[min(s.calls, len(s.pass)-1)]
	s.calls++
	st, v := Fail, WAIT
	if p {
		st, v = Pass, GO
	}
	return Evaluation{Verdict: v, Node: node, Time: time.Now(), Checks: []CheckResult{{Name: "x", Status: st, Why: "scripted"}}}, nil
}

func TestWaitNeedsConsecutivePasses(t *testing.T) {
	ev := &scripted{pass: []bool{true, false, true, true, false}}
	var seen []string
	e, err := Wait(context.Background(), ev, "n1", WaitOptions{Consecutive: 2, Interval: time.Millisecond, OnEvaluation: func(e Evaluation) {
		seen = append(seen, string(e.Verdict))
	}})
	if err != nil || e.Verdict != GO || e.Consecutive != 2 || ev.calls != 4 {
		t.Fatalf("Wait: %v %s consecutive %d after %d calls", err, e.Verdict, e.Consecutive, ev.calls)
	}
	if strings.Join(seen, ",") != "WAIT,WAIT,WAIT,GO" {
		t.Errorf("evaluations seen: %v", seen)
	}
}

func TestWaitTimesOutInSTOP(t *testing.T) {
	ev := &scripted{pass: []bool{false}}
	began := time.Now()
	e, err := Wait(context.Background(), ev, "", WaitOptions{Interval: 20 * time.Millisecond, Timeout: 150 * time.Millisecond})
	var te *TimeoutError
	if !errors.As(err, &te) || e.Verdict != STOP || te.Last.Verdict != STOP {
		t.Fatalf("Wait: %v, verdict %s", err, e.Verdict)
	}
	if !strings.Contains(err.Error(), "x FAIL: scripted") {
		t.Errorf("error %q does not say why", err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("took %s", took)
	}
	// Passing but never twice in a row within the timeout is STOP too.
	ev = &scripted{pass: []bool{true, false}}
	e, err = Wait(context.Background(), ev, "", WaitOptions{Consecutive: 3, Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond})
	if !errors.As(err, &te) || e.Verdict != STOP {
		t.Errorf("Wait: %v %s", err, e.Verdict)
	}
	// The caller's context ends the wait with its error.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := Wait(ctx, &scripted{pass: []bool{false}}, "", WaitOptions{Interval: 10 * time.Millisecond}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestWaitAgainstTheFake(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	broken := replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-c")
	f.set(broken...)
	g, _ := newGate(t, f, testPolicy(t, ""))
	n := 0
	e, err := Wait(context.Background(), g, "node-a", WaitOptions{Consecutive: 2, Interval: 10 * time.Millisecond, Timeout: 20 * time.Second,
		OnEvaluation: func(e Evaluation) {
			n++
			if n == 3 {
				f.set(healthy()...) // node-c recovers
			}
			if n <= 3 && e.Verdict != WAIT {
				t.Errorf("evaluation %d: %s", n, e.Verdict)
			}
		}})
	if err != nil || e.Verdict != GO || n != 5 {
		t.Fatalf("Wait: %v %s after %d evaluations", err, e.Verdict, n)
	}
}

func TestOutput(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	f.set(replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-c")...)
	g, _ := newGate(t, f, testPolicy(t, ""))
	e := eval(t, g, "node-a")
	var query string
	for _, c := range e.Checks {
		if c.Name == "nodes/ready" {
			query = c.Query
		}
	}
	if query == "" {
		t.Fatal("nodes/ready has no query")
	}
	var b bytes.Buffer
	if err := WriteTable(&b, e, TableDefault); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || strings.Join(strings.Fields(lines[1]), " ") != "CHECK STATUS VALUE WHY" {
		t.Errorf("default table header %q, want CHECK STATUS VALUE WHY:\n%s", lines[1], out)
	}
	for _, want := range []string{"verdict WAIT  node node-a", "nodes/ready", "FAIL", "not ready: node-c"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// No query, not even cut, and no threshold: the verdict and the
	// reasons stay on screen.
	for _, c := range e.Checks {
		if c.Query != "" && strings.Contains(out, c.Query[:min(len(c.Query), 30)]) {
			t.Errorf("default table shows the query of %s:\n%s", c.Name, out)
		}
	}
	for _, unwanted := range []string{"QUERY", "THRESHOLD", "upgradeguard_node_ready == 1 for every node"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("default table has %q:\n%s", unwanted, out)
		}
	}
	b.Reset()
	if err := WriteTable(&b, e, TableWide); err != nil {
		t.Fatal(err)
	}
	out = b.String()
	lines = strings.Split(out, "\n")
	if len(lines) < 2 || strings.Join(strings.Fields(lines[1]), " ") != "CHECK STATUS VALUE WHY THRESHOLD QUERY" {
		t.Errorf("wide table header %q:\n%s", lines[1], out)
	}
	// The whole query, not cut.
	if !strings.Contains(out, queryLine.Replace(query)) {
		t.Errorf("wide table lacks the whole query %q:\n%s", query, out)
	}
	b.Reset()
	if err := WriteJSON(&b, e); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Verdict string   `json:"verdict"`
		Passed  bool     `json:"passed"`
		Reasons []string `json:"reasons"`
		Queries int      `json:"queries"`
		Checks  []struct {
			Name, Query, Status string
		} `json:"checks"`
	}
	if err := json.Unmarshal(b.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j.Verdict != "WAIT" || j.Passed || len(j.Reasons) != 1 || !strings.HasPrefix(j.Reasons[0], "nodes/ready FAIL: not ready: node-c") || j.Queries != 10 || len(j.Checks) < 10 {
		t.Errorf("JSON %+v", j)
	}
}
