package gate

import "testing"

func TestDrainPDB(t *testing.T) {
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
	// A node the exporter does not know.
	f.set(healthy()...)
	wantRow(t, eval(t, g, "node-zz"), "drain/pdb", Unknown, `no upgradeguard_node_drainable for node "node-zz"`)
}

func TestDrainRows(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	runRowCases(t, f, g, "node-b", []rowCase{
		{"NaN", []string{"__name__", "upgradeguard_node_drainable", "node", "node-b"}, "drain/pdb", Unknown, "NaN"},
		{"2", []string{"__name__", "upgradeguard_node_unmanaged_pods", "node", "node-b"}, "drain/unmanaged", Fail, "2 pods without a controller"},
		{"", []string{"__name__", "upgradeguard_node_unmanaged_pods", "node", "node-b"}, "drain/unmanaged", Unknown, "no upgradeguard_node_unmanaged_pods"},
		{"1", []string{"__name__", "upgradeguard_node_local_storage_pods", "node", "node-b"}, "drain/local-storage", Fail, "emptyDir"},
	})
	// Options that accept what would fail.
	lenient, _ := newGate(t, f, testPolicy(t, "drain: {allow_unmanaged_pods: true, allow_local_storage_pods: true}"))
	ss := replace(healthy(), "2", "__name__", "upgradeguard_node_unmanaged_pods", "node", "node-b")
	ss = replace(ss, "1", "__name__", "upgradeguard_node_local_storage_pods", "node", "node-b")
	f.set(ss...)
	if e := eval(t, lenient, "node-b"); e.Verdict != GO {
		t.Errorf("lenient policy: %s", dump(e))
	}
}
