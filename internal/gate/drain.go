package gate

// The drain check, with a node: its pods can be evicted now (at least one
// at a time), and none would be lost (unmanaged pods, emptyDir data).

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
)

func init() {
	registerCheck(checkDef{
		Name:    "drain",
		Order:   40,
		Switch:  "drain.enabled: false",
		Enabled: func(p *Policy) bool { return enabled(p.Drain.Enabled) },
		Run:     withShards((*Gate).checkDrain, shardsDrain),
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

// The reasons of upgradeguard_node_drain_blocked_pods (collectors/pdb),
// each an answer of the Eviction API (k8s.io/kubernetes
// pkg/registry/core/pod/storage/eviction.go). Only an exhausted budget is
// cured by the drain itself: once an evicted pod is replaced elsewhere the
// budget lets the next one go. Every other reason, and a reason this gate
// does not know, refuses the pod whatever the budget allows.
const (
	reasonBudgetExhausted = "budget_exhausted" // 429 while disruptionsAllowed is used up
	reasonMultiplePDBs    = "multiple_pdbs"    // 500: more than one PDB selects the pod
	reasonStatusStale     = "status_stale"     // 429 while status.observedGeneration < metadata.generation
)

// checkDrain judges the nodes about to be replaced: the node given with
// --node, or every node of the node group given with --nodegroup
// (upgradeguard_node_info{nodegroup}). Rows drain/pdb, drain/unmanaged and
// drain/local-storage; SKIP without either.
func (g *Gate) checkDrain(ctx context.Context, s *evalState) []CheckResult {
	rows := []string{"drain/pdb", "drain/unmanaged", "drain/local-storage"}
	var nodes []string
	var groupQuery, groupNote string
	switch {
	case s.node != "":
		nodes = []string{s.node}
	case g.cfg.NodeGroup != "":
		groupQuery = g.sel("upgradeguard_node_info", fmt.Sprintf("nodegroup=%q", g.cfg.NodeGroup))
		res, err := s.query(ctx, groupQuery)
		if err != nil {
			return unknownRows(groupQuery, err, rows...)
		}
		seen := map[string]bool{}
		for _, smp := range res.samples {
			if n := smp.labels["node"]; n != "" && !seen[n] {
				seen[n] = true
				nodes = append(nodes, n)
			}
		}
		if len(nodes) == 0 {
			out := unknownRows(groupQuery, fmt.Errorf("no node of node group %q in upgradeguard_node_info: the group is empty, misspelt, or unknown to the exporter", g.cfg.NodeGroup), rows...)
			for i := range out {
				out[i].Value = "no nodes"
			}
			return out
		}
		sort.Strings(nodes)
		groupNote = res.note
	default:
		// Not missing data: no node is about to be drained, so there is
		// nothing for these rows to judge (the nodes and availability rows
		// judge the cluster as a whole).
		return []CheckResult{skipRow("drain", "no node given (--node or --nodegroup)")}
	}
	nodeMatcher := fmt.Sprintf("node=%q", nodes[0])
	if len(nodes) > 1 {
		quoted := make([]string, len(nodes))
		for i, n := range nodes {
			quoted[i] = regexp.QuoteMeta(n)
		}
		nodeMatcher = fmt.Sprintf("node=~%q", strings.Join(quoted, "|"))
	}
	q := g.sel("upgradeguard_node_drainable|upgradeguard_node_evictable_pods|upgradeguard_node_unmanaged_pods|upgradeguard_node_local_storage_pods|upgradeguard_node_drain_blocked_pods", nodeMatcher)
	res, err := s.query(ctx, q)
	if err != nil {
		return unknownRows(q, err, rows...)
	}
	res.note = joinNotes(groupNote, res.note)
	m := byName(res.samples)
	drainable := perLabel(m["upgradeguard_node_drainable"], "node", false)
	evictable := perLabel(m["upgradeguard_node_evictable_pods"], "node", true)
	blocked := map[string][]sample{}
	for _, smp := range m["upgradeguard_node_drain_blocked_pods"] {
		blocked[smp.labels["node"]] = append(blocked[smp.labels["node"]], smp)
	}
	allowance := &pdbAllowance{}

	// drain/pdb: each node judged alone, the row at the worst of them.
	d := CheckResult{Name: "drain/pdb", Query: q, Threshold: "upgradeguard_node_drainable == 1, or every block a budget that allows a disruption now"}
	if g.policy.Drain.AllAtOnce {
		d.Threshold = "upgradeguard_node_drainable == 1 (drain.all_at_once)"
	}
	var verdicts []nodeDrain
	for _, n := range nodes {
		v := nodeDrain{node: n}
		dr, ok := drainable[n]
		switch {
		case !ok:
			v.status, v.value = Unknown, "no series"
			v.why = fmt.Sprintf("no upgradeguard_node_drainable for node %q: the node is unknown to the exporter or its pdb collector is off", n)
		case isNaN(dr):
			v.status, v.value, v.why = Unknown, "NaN", "drainable is NaN"
		case dr != 1:
			v.status, v.value, v.why = g.judgeBlockedDrain(ctx, s, allowance, blocked[n])
		default:
			v.status, v.value = Pass, "drainable"
			if e, ok := evictable[n]; ok {
				v.value += fmt.Sprintf(", %s pods to evict", fmtNum(e))
			}
		}
		verdicts = append(verdicts, v)
	}
	d.Status, d.Value, d.Why = combineDrain(verdicts, g.cfg.NodeGroup)
	out := []CheckResult{withNote(d, res.note)}

	p := g.policy.Drain
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
		values := perLabel(m[c.metric], "node", true)
		var vs []nodeDrain
		for _, n := range nodes {
			v := nodeDrain{node: n}
			x, ok := values[n]
			switch {
			case !ok:
				v.status, v.value, v.why = Unknown, "no series", fmt.Sprintf("no %s for node %q", c.metric, n)
			case isNaN(x):
				v.status, v.value, v.why = Unknown, "NaN", c.metric+" is NaN"
			case x > 0 && !c.allowed:
				v.status, v.value, v.why = Fail, fmtNum(x), fmt.Sprintf("%s %s; set %s to accept", fmtNum(x), c.what, c.option)
			default:
				v.status, v.value = Pass, fmtNum(x)
			}
			vs = append(vs, v)
		}
		r.Status, r.Value, r.Why = combineDrain(vs, g.cfg.NodeGroup)
		out = append(out, r)
	}
	return out
}

// nodeDrain is the judgement of one node in a drain row.
type nodeDrain struct {
	node, value, why string
	status           Status
}

// combineDrain makes one row of the nodes' judgements: one node's as it
// is; for a node group the worst status, the failing and unknown nodes
// named (then the notes of the passing ones).
func combineDrain(vs []nodeDrain, group string) (Status, string, string) {
	if len(vs) == 1 && group == "" {
		return vs[0].status, vs[0].value, vs[0].why
	}
	var failed, unknown, passed []string
	for _, v := range vs {
		line := v.node + ": " + v.value
		if v.why != "" {
			line += " (" + v.why + ")"
		}
		switch v.status {
		case Fail:
			failed = append(failed, line)
		case Unknown:
			unknown = append(unknown, line)
		default:
			if v.why != "" {
				passed = append(passed, line)
			}
		}
	}
	value := fmt.Sprintf("%d of %d nodes of group %s pass", len(vs)-len(failed)-len(unknown), len(vs), group)
	switch {
	case len(failed) > 0:
		return Fail, value, strings.Join(failed, "; ")
	case len(unknown) > 0:
		return Unknown, value, strings.Join(unknown, "; ")
	}
	return Pass, value, strings.Join(passed, "; ")
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

// pdbAllowance reads upgradeguard_pdb_disruptions_allowed at most once per
// evaluation, when a node's drain needs it.
type pdbAllowance struct {
	once    sync.Once
	query   string
	allowed map[pdbKey]float64
	err     error
}

type pdbKey struct{ ns, pdb string }

func (a *pdbAllowance) get(ctx context.Context, g *Gate, s *evalState) (map[pdbKey]float64, error) {
	a.once.Do(func() {
		a.query = g.sel("upgradeguard_pdb_disruptions_allowed")
		res, err := s.query(ctx, a.query)
		if err != nil {
			a.err = err
			return
		}
		a.allowed = map[pdbKey]float64{}
		for _, smp := range res.samples {
			k := pdbKey{smp.labels["namespace"], smp.labels["pdb"]}
			if old, ok := a.allowed[k]; !ok || isNaN(smp.value) || smp.value < old {
				a.allowed[k] = smp.value
			}
		}
	})
	return a.allowed, a.err
}

// judgeBlockedDrain decides a node that cannot be drained in one go, from
// its upgradeguard_node_drain_blocked_pods samples. With drain.all_at_once
// it fails. Otherwise it passes ("drains in steps") only when every block
// is an exhausted budget (reason budget_exhausted) of a PDB that allows at
// least one disruption now: the drain (the roll's, or kubectl's) evicts
// what it can, retries the rest, and the PDB lets the next pod go once the
// first is replaced elsewhere. A pod under several PDBs, a PDB whose
// status lags its spec, or any other reason fails with the reason named:
// waiting on the budget cannot cure those. A sample without a reason (an
// exporter older than the reason label) is a block of unknown cause: never
// "in steps". A PDB at 0 disruptions fails; an unknown allowance is
// UNKNOWN.
func (g *Gate) judgeBlockedDrain(ctx context.Context, s *evalState, a *pdbAllowance, blocked []sample) (Status, string, string) {
	type key struct{ ns, pdb, reason string }
	var blocks []key
	pods := map[key]float64{}
	nan := false
	for _, smp := range blocked {
		if isNaN(smp.value) {
			nan = true
			continue
		}
		if smp.value <= 0 {
			continue // a reason that blocks no pod of this node
		}
		k := key{smp.labels["namespace"], smp.labels["pdb"], smp.labels["reason"]}
		if _, seen := pods[k]; !seen {
			blocks = append(blocks, k)
		}
		pods[k] = max(pods[k], smp.value) // two exporters' copies: the worst
	}
	name := func(k key) string { return k.ns + "/" + k.pdb }
	describe := func(k key) string {
		n := fmtNum(pods[k])
		switch k.reason {
		case reasonBudgetExhausted:
			return fmt.Sprintf("%s blocks %s pods (budget exhausted)", name(k), n)
		case reasonMultiplePDBs:
			return fmt.Sprintf("%s blocks %s pods that more than one PodDisruptionBudget selects (the Eviction API answers 500)", name(k), n)
		case reasonStatusStale:
			return fmt.Sprintf("%s blocks %s pods: its status lags its spec (status.observedGeneration < metadata.generation; the Eviction API answers 429 until the disruption controller catches up)", name(k), n)
		case "":
			return fmt.Sprintf("%s blocks %s pods, cause unknown (no reason label: an exporter older than the gate)", name(k), n)
		}
		return fmt.Sprintf("%s blocks %s pods (reason %s)", name(k), n, k.reason)
	}
	// A budget of gate hold's own pods is exhausted while the gate does not
	// say GO (they are ready only then): it would hold the gate that holds
	// it. Its pods become ready, and the budget allows their eviction,
	// once the gate says GO, as the drain's retries of 429 find.
	var holdNote string
	if len(blocks) > 0 {
		if h, _, err := g.gateHold(ctx, s); err == nil && len(h) > 0 {
			var held []string
			kept := make([]key, 0, len(blocks))
			for _, k := range blocks {
				if h[objKey{"pdb", k.ns, k.pdb}] && (k.reason == reasonBudgetExhausted || k.reason == "") {
					held = append(held, describe(k))
					continue
				}
				kept = append(kept, k)
			}
			blocks = kept
			if len(held) > 0 {
				holdNote = "set aside, " + gateHoldWhy + ": " + list(held)
			}
		}
	}
	ret := func(st Status, value, why string) (Status, string, string) {
		return st, value, joinNotes(why, holdNote)
	}
	if len(blocks) == 0 && !nan && holdNote != "" {
		return ret(Pass, "drainable once the gate hold's pods are ready", "")
	}
	var all []string
	for _, k := range blocks {
		all = append(all, describe(k))
	}
	why := "the Eviction API refuses pods of the node now"
	if len(all) > 0 {
		why += ": " + list(all)
	}
	switch {
	case len(blocks) == 0 && nan:
		return ret(Unknown, "not drainable", "upgradeguard_node_drain_blocked_pods is NaN")
	case g.policy.Drain.AllAtOnce || len(blocks) == 0:
		return ret(Fail, "not drainable", why)
	}
	// Blocks that no budget can cure fail at once, with their reasons.
	var incurable []string
	for _, k := range blocks {
		if k.reason != reasonBudgetExhausted && k.reason != "" {
			incurable = append(incurable, describe(k))
		}
	}
	if len(incurable) > 0 {
		return ret(Fail, "not drainable", "the Eviction API refuses pods of the node whatever the budgets allow: "+list(incurable))
	}
	allowed, err := a.get(ctx, g, s)
	if err != nil {
		return ret(Unknown, "query failed", "the node cannot be drained in one go and the disruptions its PDBs allow are unknown: "+err.Error())
	}
	var stuck, unknown, noReason, steps []string
	for _, k := range blocks {
		v, known := allowed[pdbKey{k.ns, k.pdb}]
		switch {
		case !known || isNaN(v):
			unknown = append(unknown, name(k))
		case v < 1:
			stuck = append(stuck, describe(k)+" and allows 0 disruptions")
		case k.reason == "":
			noReason = append(noReason, describe(k))
		default:
			steps = append(steps, fmt.Sprintf("%s allows %s at a time, %s pods wait", name(k), fmtNum(v), fmtNum(pods[k])))
		}
	}
	switch {
	case len(stuck) > 0:
		return ret(Fail, "not drainable", "a PodDisruptionBudget refuses evictions now: "+list(stuck))
	case len(unknown) > 0:
		return ret(Unknown, "not drainable in one go", "no upgradeguard_pdb_disruptions_allowed for "+list(unknown)+", so whether the drain can progress is unknown")
	case len(noReason) > 0:
		return ret(Unknown, "not drainable in one go", "whether the drain can progress in steps is unknown: "+list(noReason)+"; upgrade the exporter")
	case nan:
		return ret(Unknown, "not drainable in one go", "upgradeguard_node_drain_blocked_pods is NaN for some PDB")
	}
	return ret(Pass, "drains in steps", list(steps)+" (drain.all_at_once: false)")
}
