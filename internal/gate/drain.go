package gate

// The drain check, with a node: its pods can be evicted now (at least one
// at a time), and none would be lost (unmanaged pods, emptyDir data).

import (
	"context"
	"fmt"
)

func init() {
	registerCheck(checkDef{
		Name:    "drain",
		Order:   40,
		Switch:  "drain.enabled: false",
		Enabled: func(p *Policy) bool { return enabled(p.Drain.Enabled) },
		Run:     (*Gate).checkDrain,
	})
}

// DrainPolicy applies with a node: it must be drainable now.
type DrainPolicy struct {
	Enabled               *bool `yaml:"enabled"`
	AllowUnmanagedPods    bool  `yaml:"allow_unmanaged_pods"`
	AllowLocalStoragePods bool  `yaml:"allow_local_storage_pods"`
	// AllAtOnce requires the node to be drainable in one go (every pod
	// evictable now). Without it, a node whose blocking PDBs each allow at
	// least one disruption passes: its drain progresses pod by pod.
	AllAtOnce bool `yaml:"all_at_once"`
}

// checkDrain judges the node given with --node: rows drain/pdb,
// drain/unmanaged and drain/local-storage; SKIP without a node.
func (g *Gate) checkDrain(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Drain
	if s.node == "" {
		return []CheckResult{skipRow("drain", "no node given (--node)")}
	}
	q := g.sel("upgradeguard_node_drainable|upgradeguard_node_evictable_pods|upgradeguard_node_unmanaged_pods|upgradeguard_node_local_storage_pods|upgradeguard_node_drain_blocked_pods",
		fmt.Sprintf("node=%q", s.node))
	res, err := s.query(ctx, q)
	if err != nil {
		return unknownRows(q, err, "drain/pdb", "drain/unmanaged", "drain/local-storage")
	}
	m := byName(res.samples)
	one := func(name string, highIsWorse bool) (float64, bool) {
		v, ok := perLabel(m[name], "node", highIsWorse)[s.node]
		return v, ok
	}
	var out []CheckResult
	d := CheckResult{Name: "drain/pdb", Query: q, Threshold: "upgradeguard_node_drainable == 1"}
	drainable, ok := one("upgradeguard_node_drainable", false)
	evictable, okE := one("upgradeguard_node_evictable_pods", true)
	switch {
	case !ok:
		d.Status, d.Value = Unknown, "no series"
		d.Why = fmt.Sprintf("no upgradeguard_node_drainable for node %q: the node is unknown to the exporter or its pdb collector is off", s.node)
	case isNaN(drainable):
		d.Status, d.Value, d.Why = Unknown, "NaN", "drainable is NaN"
	case drainable != 1:
		d = g.judgeBlockedDrain(ctx, s, d, m["upgradeguard_node_drain_blocked_pods"])
	default:
		d.Status, d.Value = Pass, "drainable"
		if okE {
			d.Value += fmt.Sprintf(", %s pods to evict", fmtNum(evictable))
		}
	}
	out = append(out, withNote(d, res.note))
	for _, c := range []struct {
		row, metric, what string
		allowed           bool
		option            string
	}{
		{"drain/unmanaged", "upgradeguard_node_unmanaged_pods", "pods without a controller (a drain deletes them for good)", p.AllowUnmanagedPods, "drain.allow_unmanaged_pods"},
		{"drain/local-storage", "upgradeguard_node_local_storage_pods", "pods with emptyDir data (a drain loses it)", p.AllowLocalStoragePods, "drain.allow_local_storage_pods"},
	} {
		r := CheckResult{Name: c.row, Query: q, Threshold: "0"}
		if c.allowed {
			r.Threshold = "any (" + c.option + ")"
		}
		v, ok := one(c.metric, true)
		switch {
		case !ok:
			r.Status, r.Value, r.Why = Unknown, "no series", fmt.Sprintf("no %s for node %q", c.metric, s.node)
		case isNaN(v):
			r.Status, r.Value, r.Why = Unknown, "NaN", c.metric+" is NaN"
		case v > 0 && !c.allowed:
			r.Status, r.Value, r.Why = Fail, fmtNum(v), fmt.Sprintf("%s %s; set %s to accept", fmtNum(v), c.what, c.option)
		default:
			r.Status, r.Value = Pass, fmtNum(v)
		}
		out = append(out, r)
	}
	return out
}

// judgeBlockedDrain decides a node that cannot be drained in one go. With
// drain.all_at_once it fails. Otherwise it passes when every PDB that
// blocks some of the node's pods allows at least one disruption now: the
// drain (the roll's, or kubectl's) evicts what it can, retries the rest,
// and the PDB lets the next pod go once the first is replaced elsewhere. A
// PDB at 0 disruptions, a block with no PDB named (a pod under two PDBs, a
// PDB whose status lags), or a PDB whose allowance is unknown fails or is
// UNKNOWN: that drain would not start.
func (g *Gate) judgeBlockedDrain(ctx context.Context, s *evalState, d CheckResult, blocked []sample) CheckResult {
	type key struct{ ns, pdb string }
	var blockers []key
	pods := map[key]float64{}
	for _, smp := range blocked {
		k := key{smp.labels["namespace"], smp.labels["pdb"]}
		if _, seen := pods[k]; !seen {
			blockers = append(blockers, k)
		}
		pods[k] += smp.value
	}
	describe := func(k key) string { return fmt.Sprintf("%s/%s blocks %s pods", k.ns, k.pdb, fmtNum(pods[k])) }
	var all []string
	for _, k := range blockers {
		all = append(all, describe(k))
	}
	d.Status, d.Value = Fail, "not drainable"
	d.Why = "a PodDisruptionBudget refuses evictions now"
	if len(all) > 0 {
		d.Why += ": " + list(all)
	}
	if g.policy.Drain.AllAtOnce || len(blockers) == 0 {
		return d
	}
	q := g.sel("upgradeguard_pdb_disruptions_allowed")
	res, err := s.query(ctx, q)
	if err != nil {
		d.Status, d.Value = Unknown, "query failed"
		d.Why = "the node cannot be drained in one go and the disruptions its PDBs allow are unknown: " + err.Error()
		return d
	}
	allowed := map[key]float64{}
	known := map[key]bool{}
	for _, smp := range res.samples {
		k := key{smp.labels["namespace"], smp.labels["pdb"]}
		if !known[k] || smp.value < allowed[k] {
			allowed[k], known[k] = smp.value, true
		}
	}
	var stuck, unknown, steps []string
	for _, k := range blockers {
		switch v := allowed[k]; {
		case !known[k] || isNaN(v):
			unknown = append(unknown, k.ns+"/"+k.pdb)
		case v < 1:
			stuck = append(stuck, describe(k)+" and allows 0 disruptions")
		default:
			steps = append(steps, fmt.Sprintf("%s/%s allows %s at a time, %s pods wait", k.ns, k.pdb, fmtNum(v), fmtNum(pods[k])))
		}
	}
	switch {
	case len(stuck) > 0:
		d.Why = "a PodDisruptionBudget refuses evictions now: " + list(stuck)
	case len(unknown) > 0:
		d.Status, d.Value = Unknown, "not drainable in one go"
		d.Why = "no upgradeguard_pdb_disruptions_allowed for " + list(unknown) + ", so whether the drain can progress is unknown"
	default:
		d.Status, d.Value = Pass, "drains in steps"
		d.Why = list(steps) + " (drain.all_at_once: false)"
	}
	return d
}
