package gate

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNodesRows(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	runRowCases(t, f, g, "node-b", []rowCase{
		{"0", []string{"__name__", "upgradeguard_node_ready", "node", "node-c"}, "nodes/ready", Fail, "not ready: node-c"},
		{"NaN", []string{"__name__", "upgradeguard_node_ready", "node", "node-c"}, "nodes/ready", Unknown, "readiness unknown: node-c"},
		{"55", []string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c"}, "nodes/heartbeat", Fail, "node-c 55s old (lease 40s)"},
		{"NaN", []string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c"}, "nodes/heartbeat", Unknown, "node-c NaN"},
		{"", []string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c"}, "nodes/heartbeat", Unknown, "node-c has no Lease heartbeat series"},
		{"1.2", []string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-c"}, "nodes/transitions", Fail, "node-c (1.2)"},
		{"", []string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-a"}, "nodes/transitions", Unknown, "node-a (no transitions counter"},
	})
	// A node created within the window may have had its first Ready.
	f.set(replace(healthy(), "1.4", "__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-new")...)
	if e := eval(t, g, "node-b"); e.Verdict != GO {
		t.Errorf("a new node's first Ready blocks: %s", dump(e))
	}
}

// Node churn that is not a problem. Nodes on their way out
// and new nodes within the startup grace are set aside and named; a node
// NotReady past the grace still fails; the node about to be replaced is
// reported, not blocking.
func TestNodeChurn(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	j := func(value string, kv ...string) series {
		return ser(value, append(kv, "job", "upgradeguard", "cluster", "prod")...)
	}
	notReadyC := replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-c")
	notReadyC = replace(notReadyC, "300", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c")
	ago := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(-d).Unix(), 10) }
	for _, c := range []struct {
		name   string
		extra  series
		policy string
		st     Status
		why    string
	}{
		{"cluster autoscaler's taint", j("1", "__name__", "upgradeguard_node_spec_taint", "node", "node-c", "key", "ToBeDeletedByClusterAutoscaler", "value", "1700000000", "effect", "NoSchedule"), "",
			Pass, "set aside, on their way out: node-c (tainted ToBeDeletedByClusterAutoscaler)"},
		{"Karpenter's taint", j("1", "__name__", "upgradeguard_node_spec_taint", "node", "node-c", "key", "karpenter.sh/disrupted", "value", "", "effect", "NoSchedule"), "",
			Pass, "node-c (tainted karpenter.sh/disrupted)"},
		{"Karpenter's older taint", j("1", "__name__", "upgradeguard_node_spec_taint", "node", "node-c", "key", "karpenter.sh/disruption", "value", "disrupting", "effect", "NoSchedule"), "",
			Pass, "node-c (tainted karpenter.sh/disruption)"},
		{"deletionTimestamp", j(ago(time.Minute), "__name__", "upgradeguard_node_deletion_timestamp_seconds", "node", "node-c"), "",
			Pass, "node-c (deletionTimestamp set)"},
		{"another taint does not count", j("1", "__name__", "upgradeguard_node_spec_taint", "node", "node-c", "key", "dedicated", "value", "gpu", "effect", "NoSchedule"), "",
			Fail, "not ready: node-c"},
		{"the taint list is the policy's", j("1", "__name__", "upgradeguard_node_spec_taint", "node", "node-c", "key", "ToBeDeletedByClusterAutoscaler", "value", "1", "effect", "NoSchedule"), "nodes: {leaving_taints: []}",
			Fail, "not ready: node-c"},
	} {
		t.Run(c.name, func(t *testing.T) {
			gg := g
			if c.policy != "" {
				gg, _ = newGate(t, f, testPolicy(t, c.policy))
			}
			f.set(append(notReadyC, c.extra)...)
			e := eval(t, gg, "node-a")
			wantRow(t, e, "nodes/ready", c.st, c.why)
			if c.st == Pass {
				if e.Verdict != GO {
					t.Errorf("a leaving node blocks node-a:\n%s", dump(e))
				}
				wantRow(t, e, "nodes/heartbeat", Pass, "")
			}
		})
	}

	// A node created a minute ago, not Ready yet and without a heartbeat:
	// set aside. Past the grace it fails.
	young := replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-new")
	young = replace(young, "", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-new")
	f.set(young...)
	e := eval(t, g, "node-a")
	wantRow(t, e, "nodes/ready", Pass, "set aside, starting within nodes.startup_grace: node-new (created 1m")
	wantRow(t, e, "nodes/heartbeat", Pass, "node-new has no Lease heartbeat series (created 1m")
	if e.Verdict != GO {
		t.Errorf("a starting node blocks: %s", dump(e))
	}
	f.set(replace(young, ago(6*time.Minute), "__name__", "upgradeguard_node_created_timestamp_seconds", "node", "node-new")...)
	wantRow(t, eval(t, g, "node-a"), "nodes/ready", Fail, "not ready: node-new")
	short, _ := newGate(t, f, testPolicy(t, "nodes: {startup_grace: 30s}"))
	f.set(young...)
	wantRow(t, eval(t, short, "node-a"), "nodes/ready", Fail, "not ready: node-new")
	// A young node whose kubelet renewed its Lease and then stopped is dead,
	// not starting: within the grace it still fails (the e2e's stopped
	// heartbeat on a node created 3 minutes earlier was set aside and the
	// gate said GO).
	deadYoung := replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-new")
	deadYoung = replace(deadYoung, "300", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-new")
	f.set(deadYoung...)
	e = eval(t, g, "node-a")
	wantRow(t, e, "nodes/ready", Fail, "not ready: node-new")
	wantRow(t, e, "nodes/heartbeat", Fail, "heartbeat overdue: node-new 300s old (lease 40s)")
	if e.Verdict == GO {
		t.Errorf("a young node with a dead kubelet gives GO: %s", dump(e))
	}
	// Past the grace but within the transitions window, a flap after the
	// first Ready fails.
	f.set(replace(replace(healthy(), ago(7*time.Minute), "__name__", "upgradeguard_node_created_timestamp_seconds", "node", "node-new"),
		"2.1", "__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-new")...)
	wantRow(t, eval(t, g, "node-a"), "nodes/transitions", Fail, "node-new (2.1)")

	// The node about to be replaced may be dead: its state is reported,
	// not blocking; another node's death still blocks. Its drain check is
	// unaffected.
	deadB := replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-b")
	deadB = replace(deadB, "300", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-b")
	deadB = replace(deadB, "1", "__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-b")
	f.set(deadB...)
	e = eval(t, g, "node-b")
	wantRow(t, e, "nodes/ready", Pass, "the node to replace, reported, not blocking: node-b is not Ready")
	wantRow(t, e, "nodes/heartbeat", Pass, "the node to replace, reported, not blocking: node-b 300s old (lease 40s)")
	wantRow(t, e, "nodes/transitions", Pass, "the node to replace, reported, not blocking: readiness changed: node-b (1)")
	if e.Verdict != GO {
		t.Errorf("the dead node to replace blocks its own replacement: %s", dump(e))
	}
	wantRow(t, eval(t, g, "node-a"), "nodes/ready", Fail, "not ready: node-b")
	f.set(append(replace(deadB, "0", "__name__", "upgradeguard_node_drainable", "node", "node-b"),
		j("2", "__name__", "upgradeguard_node_drain_blocked_pods", "node", "node-b", "namespace", "shop", "pdb", "frozen", "reason", "budget_exhausted"),
		j("0", "__name__", "upgradeguard_pdb_disruptions_allowed", "namespace", "shop", "pdb", "frozen"))...)
	wantRow(t, eval(t, g, "node-b"), "drain/pdb", Fail, "shop/frozen blocks 2 pods (budget exhausted) and allows 0 disruptions")
}

// The exporter measures the heartbeat age on its own clock
// since it saw the Lease's renewTime change, so a healthy kubelet whose
// clock runs 60 s behind (or ahead) shows ages below its renewal interval;
// the gate compares them with the lease duration and nothing else. Right
// after an exporter restart the first renewTime counts at face value (a
// clock 60 s behind shows 65 s until the next renewal): one failing
// evaluation, which the consecutive passes required for GO absorb.
func TestHeartbeatClockSkew(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	ages := []string{"65", "3", "8"} // restart, then renewals every 10 s
	n := 0
	next := func() {
		f.set(replace(healthy(), ages[min(n, len(ages)-1)], "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c")...)
		n++
	}
	next()
	e, err := Wait(context.Background(), g, "node-a", WaitOptions{Consecutive: 2, Interval: time.Millisecond, Timeout: 20 * time.Second,
		OnEvaluation: func(e Evaluation) {
			if n == 1 {
				if r := row(t, e, "nodes/heartbeat"); r.Status != Fail || !strings.Contains(r.Why, "node-c 65s old") {
					t.Errorf("first sight after a restart: %s %q", r.Status, r.Why)
				}
			}
			next()
		}})
	if err != nil || e.Verdict != GO || n != 4 {
		t.Fatalf("skewed kubelet: %v %s after %d evaluations\n%s", err, e.Verdict, n-1, dump(e))
	}
	// A clock ahead: the exporter says 0 at first sight, never negative.
	f.set(replace(healthy(), "0", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c")...)
	wantRow(t, eval(t, g, "node-a"), "nodes/heartbeat", Pass, "")
	// A negative age comes only from an exporter that reads the kubelet's
	// clock: unknown, not a pass.
	f.set(replace(healthy(), "-58", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c")...)
	wantRow(t, eval(t, g, "node-a"), "nodes/heartbeat", Unknown, "node-c has a negative heartbeat age (-58s)")
}
