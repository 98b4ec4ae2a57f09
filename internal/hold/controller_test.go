package hold

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upgradeguard/upgradeguard/internal/gate"
)

// recordTarget remembers the decisions applied to it.
type recordTarget struct{ got []Action }

func (*recordTarget) Kind() string { return "record" }
func (r *recordTarget) Apply(_ context.Context, d Decision, _ *Reporter) error {
	r.got = append(r.got, d.Action)
	return nil
}

func TestDecide(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c, err := New(Config{Gate: &script{}, Consecutive: 2, Interval: time.Minute, StopAfter: 10 * time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		pass, down bool
		advance    time.Duration
		action     Action
		verdict    gate.Verdict
	}{
		// A fresh controller whose first evaluation passes touches nothing.
		{pass: true, action: Keep, verdict: gate.WAIT},
		{pass: true, action: Release, verdict: gate.GO},
		{pass: true, action: Release, verdict: gate.GO},
		// One failure holds at once; the next pass keeps the hold.
		{pass: false, action: Hold, verdict: gate.WAIT},
		{pass: true, advance: time.Minute, action: Keep, verdict: gate.WAIT},
		// Unreachable monitoring is never GO: it holds and resets the streak.
		{down: true, advance: time.Minute, action: Hold, verdict: gate.WAIT},
		{pass: true, advance: time.Minute, action: Keep, verdict: gate.WAIT},
		{pass: false, advance: 6 * time.Minute, action: Hold, verdict: gate.WAIT},
		// 10 minutes without GO since the first failure: STOP.
		{pass: false, advance: 2 * time.Minute, action: Hold, verdict: gate.STOP},
		{pass: true, advance: time.Minute, action: Keep, verdict: gate.STOP},
		{pass: true, advance: time.Minute, action: Release, verdict: gate.GO},
		// The STOP clock starts again after a GO.
		{pass: false, advance: time.Minute, action: Hold, verdict: gate.WAIT},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		d := c.decide(evaluation(s.pass, s.down))
		if d.Action != s.action || d.Verdict != s.verdict {
			t.Errorf("step %d (pass %v, down %v): %s %s, want %s %s (%s)", i, s.pass, s.down, d.Action, d.Verdict, s.action, s.verdict, d.Reasons())
		}
		if d.Evaluation.Verdict != d.Verdict {
			t.Errorf("step %d: evaluation verdict %s, decision %s", i, d.Evaluation.Verdict, d.Verdict)
		}
	}
}

func TestReadinessFollowsTheVerdict(t *testing.T) {
	s := &script{}
	reg := prometheus.NewRegistry()
	tgt := &recordTarget{}
	c, err := New(Config{Gate: s, Consecutive: 2, Interval: time.Minute, Targets: []Target{tgt}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c.setLeading(true)
	get := func() (int, map[string]any) {
		rec := httptest.NewRecorder()
		c.Readiness().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/gate", nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("/gate body %q: %v", rec.Body.String(), err)
		}
		return rec.Code, body
	}
	if code, body := get(); code != http.StatusServiceUnavailable || body["verdict"] != "WAIT" {
		t.Errorf("before any evaluation: %d %v, want 503 WAIT", code, body)
	}
	ctx := context.Background()
	s.set(true)
	c.step(ctx)
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Errorf("after one passing evaluation of 2: %d, want 503", code)
	}
	c.step(ctx)
	if code, body := get(); code != http.StatusOK || body["verdict"] != "GO" {
		t.Errorf("after 2 passing evaluations: %d %v, want 200 GO", code, body)
	}
	if v := testutil.ToFloat64(c.m.active.WithLabelValues(ReadinessTarget)); v != 0 {
		t.Errorf("hold_active{kops-readiness} %v at GO", v)
	}
	s.set(false)
	c.step(ctx)
	code, body := get()
	if code != http.StatusServiceUnavailable || !strings.Contains(body["why"].(string), "TestFault firing") {
		t.Errorf("after a failure: %d %v, want 503 with the reason", code, body)
	}
	if v := testutil.ToFloat64(c.m.active.WithLabelValues(ReadinessTarget)); v != 1 {
		t.Errorf("hold_active{kops-readiness} %v while held", v)
	}
	if v := testutil.ToFloat64(c.m.transitions.WithLabelValues(ReadinessTarget, "pause")); v != 1 {
		t.Errorf("pause transitions of the readiness target: %v", v)
	}
	// A stale GO is not GO: the loop may be stuck.
	s.set(true)
	c.step(ctx)
	c.step(ctx)
	if code, _ := get(); code != http.StatusOK {
		t.Fatalf("GO again: %d", code)
	}
	c.mu.Lock()
	c.lastAt = time.Now().Add(-c.staleAfter() - time.Second)
	c.mu.Unlock()
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body["why"].(string), "old") {
		t.Errorf("stale GO: %d %v, want 503", code, body)
	}
	want := []Action{Keep, Release, Hold, Keep, Release}
	if len(tgt.got) != len(want) {
		t.Fatalf("target saw %v, want %v", tgt.got, want)
	}
	for i := range want {
		if tgt.got[i] != want[i] {
			t.Errorf("target saw %v, want %v", tgt.got, want)
			break
		}
	}
	// A replica that does not lead evaluates and serves /gate, but leaves
	// the targets alone.
	c.setLeading(false)
	s.set(false)
	c.step(ctx)
	if len(tgt.got) != len(want) {
		t.Errorf("a replica that does not lead applied %v", tgt.got[len(want):])
	}
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Errorf("a replica that does not lead: /gate %d on a failure", code)
	}
}
