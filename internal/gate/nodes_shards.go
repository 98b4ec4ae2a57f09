package gate

// Exporter shards. Sharded exporters (--shard,
// --total-shards) each serve the per-node series of the nodes hashed to
// them. A shard whose pod is evicted and Pending vanishes from service
// discovery: no up series at all, not up 0, and its nodes vanish from
// every per-node query, so "2 of 2 ready" in a cluster of 5 nodes looked
// like GO. Every exporter serving per-node series says which shard of how
// many it is (upgradeguard_exporter_total_shards{shard} = --total-shards,
// read in the node view's query, no request of its own); the rows that
// judge per-node series take a missing shard into account here, wrapped
// around their checks in the registry (withShards):
//
//   - rows judging every node (nodes/ready, nodes/heartbeat,
//     nodes/transitions; the drain rows with --nodegroup, whose node list
//     comes from the shards): a PASS is UNKNOWN naming the missing shards,
//     a FAIL stays FAIL (a node reported bad is bad) with the shards noted.
//     With --node too: these rows judge the other nodes as well, and a node
//     NotReady on the missing shard would block the replacement.
//   - nodes/groups: with InService instances that have no node in the
//     view, UNKNOWN, whether the row failed them (short of nodes) or set
//     them aside (a node gone after the last AWS refresh: the missing
//     shard's nodes went away from the series), since their nodes may be on
//     the missing shard; with every instance's node reported the row stands,
//     as what the missing shard serves cannot change it.
//   - the drain rows with --node: the node's series come from its own shard,
//     with every PDB (each shard watches them all), so they are complete
//     whatever other shard is missing; only a row without the node's series
//     notes the missing shards (the node may be one of theirs).
//
// No shard series at all with node series present are exporters older than
// the gate (noted, judged as before); no series at all is the rows' own
// "no series" case. The series are read through g.sel, so with the policy's
// matchers a sharded exporter of another cluster in the same Thanos does
// not count.

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// shardsMetric is the exporter's shard series (exporter.ShardsMetric).
const shardsMetric = "upgradeguard_exporter_total_shards"

// maxShards bounds a total the gate accepts as a shard count.
const maxShards = 1 << 16

// shardRef is one shard of a split: Index of Total.
type shardRef struct{ index, total int }

func (r shardRef) String() string { return fmt.Sprintf("%d of %d", r.index, r.total) }

// shardCoverage is what the exporters say of their shards.
type shardCoverage struct {
	// reported: some exporter serves shardsMetric.
	reported bool
	// nodeSeries: the node view has readiness series.
	nodeSeries bool
	// present are the shards reporting, sorted by total then index.
	present []shardRef
	// missing are the shards whose absence leaves nodes unserved; empty
	// when every node is served by some reporting shard.
	missing []shardRef
	// totals are the distinct totals reported, ascending.
	totals []int
	// bad are series that are no shard (a bad label or value).
	bad []string
	// nodeless are the InService Auto Scaling instances without a node in
	// the node view (upgradeguard_node_info{instance_id}), sorted.
	nodeless []string
}

// complete tells whether every node is served.
func (c *shardCoverage) complete() bool { return len(c.missing) == 0 && len(c.bad) == 0 }

// why says what is missing.
func (c *shardCoverage) why() string {
	var parts []string
	if len(c.missing) > 0 {
		names := make([]string, len(c.missing))
		for i, m := range c.missing {
			names[i] = m.String()
		}
		what := "exporter shard " + names[0] + " is missing"
		if len(names) > 1 {
			what = "exporter shards " + strings.Join(names, ", ") + " are missing"
		}
		reporting := make([]string, len(c.present))
		for i, p := range c.present {
			reporting[i] = p.String()
		}
		parts = append(parts, fmt.Sprintf("%s (no %s series; reporting: %s): the nodes hashed to it are not judged; its target is gone from service discovery (a pod evicted or Pending) or not scraped",
			what, shardsMetric, strings.Join(reporting, ", ")))
	}
	if len(c.totals) > 1 {
		ts := make([]string, len(c.totals))
		for i, t := range c.totals {
			ts[i] = strconv.Itoa(t)
		}
		parts = append(parts, "exporters disagree on --total-shards ("+strings.Join(ts, ", ")+"): a rollout changing it, or a misconfiguration")
	}
	if len(c.bad) > 0 {
		parts = append(parts, "series that name no shard: "+list(c.bad))
	}
	return strings.Join(parts, "; ")
}

// valueNote is appended to the value of a row made UNKNOWN.
func (c *shardCoverage) valueNote() string {
	if len(c.missing) == 0 {
		return " (a shard series is malformed)"
	}
	names := make([]string, len(c.missing))
	for i, m := range c.missing {
		names[i] = m.String()
	}
	return " (shard " + strings.Join(names, ", ") + " missing)"
}

// coverShards judges the shard series: which shards report, and whether
// together they serve every node.
//
// A node belongs to shard jumpHash(node, total) (internal/kube.Shard). For
// one total, every shard 0..total-1 must report. While a rollout changes
// the total, exporters report different totals, and a node is served when
// its shard under some reported total reports with that total. The gate
// cannot hash nodes it does not see, so it asks whether some node could be
// unserved: jump consistent hashing moves a node, when the total grows from
// T to T', either nowhere or to a shard in [T, T'). Going through the
// totals in ascending order, the shards an unserved node may be on at T
// are those not reporting with T among the candidates, and at the next
// total those same shards plus, if there was any, every new shard. The
// candidates left at the largest total are the missing shards.
func coverShards(samples []sample) shardCoverage {
	var c shardCoverage
	present := map[int]map[int]bool{}
	for _, smp := range samples {
		c.reported = true
		idx, err := strconv.Atoi(smp.labels["shard"])
		t := smp.value
		if err != nil || isNaN(t) || t != math.Trunc(t) || t < 1 || t > maxShards || idx < 0 || float64(idx) >= t {
			c.bad = append(c.bad, describeSample(smp))
			continue
		}
		total := int(t)
		if present[total] == nil {
			present[total] = map[int]bool{}
			c.totals = append(c.totals, total)
		}
		if !present[total][idx] {
			present[total][idx] = true
			c.present = append(c.present, shardRef{idx, total})
		}
	}
	slices.Sort(c.totals)
	slices.SortFunc(c.present, func(a, b shardRef) int {
		if a.total != b.total {
			return a.total - b.total
		}
		return a.index - b.index
	})
	if len(c.totals) == 0 {
		return c
	}
	// candidates: the shards, under the current total, of a node no shard
	// reported so far serves.
	candidates := make([]int, c.totals[0])
	for i := range candidates {
		candidates[i] = i
	}
	for i, total := range c.totals {
		var left []int
		for _, b := range candidates {
			if !present[total][b] {
				left = append(left, b)
			}
		}
		if len(left) == 0 {
			return c
		}
		if i+1 == len(c.totals) {
			for _, b := range left {
				c.missing = append(c.missing, shardRef{b, total})
			}
			return c
		}
		for b := total; b < c.totals[i+1]; b++ {
			left = append(left, b)
		}
		candidates = left
	}
	return c
}

// shards reads the shard series from the node view's query (sent once per
// evaluation, shared with the nodes rows).
func (g *Gate) shards(ctx context.Context, s *evalState) (shardCoverage, error) {
	res, err := s.query(ctx, g.nodesQuery())
	if err != nil {
		return shardCoverage{}, err
	}
	m := byName(res.samples)
	c := coverShards(m[shardsMetric])
	c.nodeSeries = len(m["upgradeguard_node_ready"]) > 0
	nodes := map[string]bool{}
	for _, smp := range m["upgradeguard_node_info"] {
		nodes[smp.labels["instance_id"]] = true
	}
	for _, smp := range m["upgradeguard_aws_asg_instance_info"] {
		id := smp.labels["instance_id"]
		if smp.labels["lifecycle_state"] == inServiceState && id != "" && !nodes[id] && !slices.Contains(c.nodeless, id) {
			c.nodeless = append(c.nodeless, id)
		}
	}
	slices.Sort(c.nodeless)
	return c, nil
}

// How a check's rows depend on the shards (withShards).
type shardRows int

const (
	// shardsEveryNode: the rows judge every node.
	shardsEveryNode shardRows = iota
	// shardsInstances: nodes/groups, instances against nodes.
	shardsInstances
	// shardsDrain: the drain rows: every node of --nodegroup, or --node's.
	shardsDrain
)

// withShards wraps a check whose rows judge per-node series so that a
// missing exporter shard makes them UNKNOWN where it could change them
// (see the top of this file).
func withShards(run func(*Gate, context.Context, *evalState) []CheckResult, kind shardRows) func(*Gate, context.Context, *evalState) []CheckResult {
	return func(g *Gate, ctx context.Context, s *evalState) []CheckResult {
		rows := run(g, ctx, s)
		judged := false
		for _, r := range rows {
			if r.Status != Skip {
				judged = true
			}
		}
		if !judged {
			return rows
		}
		if kind == shardsDrain && s.node != "" {
			// The node's own series are complete when present: only an
			// unknown row may come from a missing shard (no extra request
			// otherwise).
			if !slices.ContainsFunc(rows, func(r CheckResult) bool { return r.Status == Unknown }) {
				return rows
			}
		}
		c, err := g.shards(ctx, s)
		if err != nil {
			for i, r := range rows {
				if r.Status == Pass {
					rows[i].Status = Unknown
					rows[i] = withNote(rows[i], "whether every exporter shard reports is unknown: "+err.Error())
				}
			}
			return rows
		}
		return applyShards(rows, c, kind, s.node)
	}
}

// applyShards changes the rows for the coverage c.
func applyShards(rows []CheckResult, c shardCoverage, kind shardRows, node string) []CheckResult {
	if !c.reported {
		if c.nodeSeries && kind == shardsEveryNode {
			for i, r := range rows {
				if r.Status != Skip {
					rows[i] = withNote(r, "no "+shardsMetric+" series: exporters older than the gate, whether every shard reports is not checked")
				}
			}
		}
		return rows
	}
	if c.complete() {
		return rows
	}
	why := c.why()
	for i, r := range rows {
		switch {
		case r.Status == Skip:
		case kind == shardsDrain && node != "":
			if r.Status == Unknown {
				rows[i] = withNote(r, "node "+node+" may be on the missing shard: "+why)
			}
		case kind == shardsInstances && r.Status != Unknown && len(c.nodeless) > 0:
			// Whether the row failed them as short of nodes or set them
			// aside (a node that went away after the last AWS refresh: the
			// missing shard's nodes went away from the series), their nodes
			// may be on the missing shard.
			rows[i].Status = Unknown
			rows[i].Value += c.valueNote()
			rows[i].Why = why + "; InService instances without a node series may have it on the missing shard: " + list(c.nodeless)
			if r.Why != "" {
				rows[i].Why += "; " + r.Why
			}
		case r.Status == Pass && kind != shardsInstances:
			rows[i].Status = Unknown
			rows[i].Value += c.valueNote()
			if r.Why != "" {
				rows[i].Why = why + "; " + r.Why
			} else {
				rows[i].Why = why
			}
		case r.Status != Pass:
			rows[i] = withNote(r, why)
		default: // nodes/groups: every InService instance has its node
			rows[i] = withNote(r, why+" (every InService instance has its node, so this row does not need it)")
		}
	}
	return rows
}
