package gate

import (
	"strings"
	"testing"
)

// blockedOn returns the healthy data with node not drainable and its pods
// blocked as given: namespace, pdb, reason, pods (reason "" leaves the
// label out, as exporters before the reason label did).
func blockedOn(node string, blocks ...[4]string) []series {
	ss := replace(healthy(), "0", "__name__", "upgradeguard_node_drainable", "node", node)
	for _, b := range blocks {
		kv := []string{"__name__", "upgradeguard_node_drain_blocked_pods", "node", node, "namespace", b[0], "pdb", b[1], "job", "upgradeguard", "cluster", "prod"}
		if b[2] != "" {
			kv = append(kv, "reason", b[2])
		}
		ss = append(ss, ser(b[3], kv...))
	}
	return ss
}

func allowedSeries(ns, pdb, v string) series {
	return ser(v, "__name__", "upgradeguard_pdb_disruptions_allowed", "namespace", ns, "pdb", pdb, "job", "upgradeguard", "cluster", "prod")
}

func TestDrainPDB(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	blocked := blockedOn("node-b", [4]string{"shop", "frozen", "budget_exhausted", "2"})
	f.set(blocked...)
	// Without the PDB's allowance, whether the drain progresses is unknown.
	wantRow(t, eval(t, g, "node-b"), "drain/pdb", Unknown, "no upgradeguard_pdb_disruptions_allowed for shop/frozen")
	f.set(append(blocked, allowedSeries("shop", "frozen", "0"))...)
	wantRow(t, eval(t, g, "node-b"), "drain/pdb", Fail, "shop/frozen blocks 2 pods (budget exhausted) and allows 0 disruptions")
	// A PDB that lets one pod go at a time: the drain progresses in steps,
	// unless the policy wants the node drainable in one go.
	f.set(append(blocked, allowedSeries("shop", "frozen", "1"))...)
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

// Pods the Eviction API refuses whatever the budget says
// are never "drains in steps", even when every PDB allows a disruption.
func TestDrainBlocksNoBudgetCures(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	allowOne := []series{allowedSeries("shop", "web-pdb", "1"), allowedSeries("shop", "front-pdb", "1"), allowedSeries("shop", "frozen", "1")}
	for _, c := range []struct {
		name   string
		blocks [][4]string
		st     Status
		why    []string
	}{
		// web-pdb selects app=web, front-pdb tier=front, both
		// maxUnavailable 1 and disruptionsAllowed 1; node-b holds two pods
		// with both labels. The Eviction API answers 500.
		{"a pod under two PDBs", [][4]string{{"shop", "web-pdb", "multiple_pdbs", "2"}, {"shop", "front-pdb", "multiple_pdbs", "2"}}, Fail,
			[]string{"shop/front-pdb blocks 2 pods that more than one PodDisruptionBudget selects", "shop/web-pdb blocks 2 pods"}},
		// One PDB whose status.observedGeneration lags metadata.generation:
		// 429 to every pod that needs the budget.
		{"a PDB whose status lags its spec", [][4]string{{"shop", "frozen", "status_stale", "2"}}, Fail,
			[]string{"shop/frozen blocks 2 pods: its status lags its spec"}},
		// A reason this gate does not know cannot be cured by waiting either.
		{"an unknown reason", [][4]string{{"shop", "frozen", "quota_frozen", "1"}}, Fail,
			[]string{"shop/frozen blocks 1 pods (reason quota_frozen)"}},
		// One cured by the budget and one not: the node fails.
		{"mixed", [][4]string{{"shop", "frozen", "budget_exhausted", "1"}, {"shop", "web-pdb", "multiple_pdbs", "1"}}, Fail,
			[]string{"shop/web-pdb blocks 1 pods that more than one"}},
		// An exporter without the reason label: the cause is unknown, so
		// the node is not "in steps".
		{"no reason label", [][4]string{{"shop", "frozen", "", "2"}}, Unknown,
			[]string{"cause unknown (no reason label", "upgrade the exporter"}},
		// Zero-valued reasons block nothing.
		{"zero-valued reasons", [][4]string{{"shop", "frozen", "budget_exhausted", "2"}, {"shop", "frozen", "multiple_pdbs", "0"}, {"shop", "frozen", "status_stale", "0"}}, Pass,
			[]string{"shop/frozen allows 1 at a time, 2 pods wait"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.set(append(blockedOn("node-b", c.blocks...), allowOne...)...)
			e := eval(t, g, "node-b")
			for _, w := range c.why {
				wantRow(t, e, "drain/pdb", c.st, w)
			}
		})
	}
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

// With --nodegroup every node of the group must be
// drainable, at least in steps.
func TestDrainNodeGroup(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	group := func(name string) func(*Config) { return func(c *Config) { c.NodeGroup = name } }
	g, _ := newGate(t, f, testPolicy(t, ""), group("nodes-a"))
	f.set(healthy()...)
	e := eval(t, g, "")
	if e.Verdict != GO || e.NodeGroup != "nodes-a" {
		t.Fatalf("healthy group: %s", dump(e))
	}
	if r := row(t, e, "drain/pdb"); r.Value != "2 of 2 nodes of group nodes-a pass" {
		t.Errorf("drain/pdb value %q", r.Value)
	}
	if !strings.Contains(dump(e), "nodegroup nodes-a") {
		t.Errorf("the table does not name the group:\n%s", dump(e))
	}
	// A 1-replica Deployment under a minAvailable: 1 PDB on node-a: its
	// PDB allows 0 disruptions, so the group's update would fail with
	// PodEvictionFailure.
	f.set(append(blockedOn("node-a", [4]string{"shop", "single", "budget_exhausted", "1"}), allowedSeries("shop", "single", "0"))...)
	wantRow(t, eval(t, g, ""), "drain/pdb", Fail, "node-a: not drainable (a PodDisruptionBudget refuses evictions now: shop/single blocks 1 pods (budget exhausted) and allows 0 disruptions)")
	// The same block on a node of another group does not count.
	f.set(append(blockedOn("node-c", [4]string{"shop", "single", "budget_exhausted", "1"}), allowedSeries("shop", "single", "0"))...)
	if e := eval(t, g, ""); e.Verdict != GO {
		t.Errorf("a block in group nodes-b stops nodes-a: %s", dump(e))
	}
	// In steps is enough; a node's unmanaged pods fail the group.
	f.set(append(blockedOn("node-b", [4]string{"shop", "web", "budget_exhausted", "2"}), allowedSeries("shop", "web", "1"))...)
	wantRow(t, eval(t, g, ""), "drain/pdb", Pass, "node-b: drains in steps (shop/web allows 1 at a time, 2 pods wait")
	f.set(replace(healthy(), "3", "__name__", "upgradeguard_node_unmanaged_pods", "node", "node-b")...)
	wantRow(t, eval(t, g, ""), "drain/unmanaged", Fail, "node-b: 3 (3 pods without a controller")
	// A group without nodes is UNKNOWN, never GO.
	empty, _ := newGate(t, f, testPolicy(t, ""), group("nodes-zz"))
	f.set(healthy()...)
	wantRow(t, eval(t, empty, ""), "drain/pdb", Unknown, `no node of node group "nodes-zz"`)
}
