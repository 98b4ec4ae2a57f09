package gate

import "testing"

func TestNodesRows(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	runRowCases(t, f, g, "node-b", []rowCase{
		{"0", []string{"__name__", "upgradeguard_node_ready", "node", "node-c"}, "nodes/ready", Fail, "not ready: node-c"},
		{"NaN", []string{"__name__", "upgradeguard_node_ready", "node", "node-b"}, "nodes/ready", Unknown, "readiness unknown: node-b"},
		{"55", []string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c"}, "nodes/heartbeat", Fail, "node-c 55s old (lease 40s)"},
		{"NaN", []string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-b"}, "nodes/heartbeat", Unknown, "node-b NaN"},
		{"", []string{"__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c"}, "nodes/heartbeat", Unknown, "node-c has no Lease heartbeat series"},
		{"1.2", []string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-c"}, "nodes/transitions", Fail, "node-c (1.2)"},
		{"2.1", []string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-new"}, "nodes/transitions", Fail, "node-new (2.1)"},
		{"", []string{"__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-a"}, "nodes/transitions", Unknown, "node-a (no transitions counter"},
	})
	// A node created within the window may have had its first Ready.
	f.set(replace(healthy(), "1.4", "__name__", "increase:upgradeguard_node_ready_transitions_total", "node", "node-new")...)
	if e := eval(t, g, "node-b"); e.Verdict != GO {
		t.Errorf("a new node's first Ready blocks: %s", dump(e))
	}
}
