package gate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shardedCluster is the input of a shard gone: five nodes split across two
// exporter shards, shard 0 serving node-1 and node-2 (instance
// 10.0.0.1:9741), shard 1 node-3, node-4 and node-5 (10.0.0.2:9741); with
// shard1 false, shard 1's pod is evicted and Pending: its target is gone
// from service discovery, so none of its series (not even up) exist, and
// node-4 has gone NotReady without anybody reporting it. Every node is in
// node group ng-1 and the cluster is otherwise healthy() (one Auto Scaling
// instance per node when asg is true).
func shardedCluster(shard1, node4Ready, asg bool) []series {
	var ss []series
	for _, s := range healthy() {
		name := s.labels["__name__"]
		if s.labels["node"] != "" || strings.HasPrefix(strings.TrimPrefix(name, "increase:"), "upgradeguard_node_") ||
			strings.HasPrefix(name, "upgradeguard_aws_asg_instance") || name == "upgradeguard_aws_asg_desired_capacity" || name == "up" {
			continue
		}
		ss = append(ss, s)
	}
	created := strconv.FormatInt(time.Now().Add(-48*time.Hour).Unix(), 10)
	for shard, nodes := range [][]string{{"node-1", "node-2"}, {"node-3", "node-4", "node-5"}} {
		if shard == 1 && !shard1 {
			continue
		}
		inst := fmt.Sprintf("10.0.0.%d:9741", shard+1)
		j := func(value string, kv ...string) series {
			return ser(value, append(kv, "job", "upgradeguard", "instance", inst, "cluster", "prod")...)
		}
		ss = append(ss,
			ser("1", "__name__", "up", "job", "upgradeguard", "instance", inst, "cluster", "prod"),
			j("2", "__name__", "upgradeguard_exporter_total_shards", "shard", strconv.Itoa(shard)))
		for _, n := range nodes {
			ready := "1"
			if n == "node-4" && !node4Ready {
				ready = "0"
			}
			ss = append(ss,
				j(ready, "__name__", "upgradeguard_node_ready", "node", n),
				j("12", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", n),
				j("40", "__name__", "upgradeguard_node_lease_duration_seconds", "node", n),
				j("0", "__name__", "increase:upgradeguard_node_ready_transitions_total", "node", n),
				j("1", "__name__", "upgradeguard_node_info", "node", n, "zone", "eu-west-1a", "nodegroup", "ng-1", "instance_id", "i-"+n),
				j(created, "__name__", "upgradeguard_node_created_timestamp_seconds", "node", n),
				j("1", "__name__", "upgradeguard_node_drainable", "node", n),
				j("3", "__name__", "upgradeguard_node_evictable_pods", "node", n),
				j("0", "__name__", "upgradeguard_node_unmanaged_pods", "node", n),
				j("0", "__name__", "upgradeguard_node_local_storage_pods", "node", n),
			)
		}
	}
	if asg {
		// The unsharded exporter of the AWS collectors: no shard series.
		j := func(value string, kv ...string) series {
			return ser(value, append(kv, "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")...)
		}
		ss = append(ss, ser("1", "__name__", "up", "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod"),
			j("5", "__name__", "upgradeguard_aws_asg_desired_capacity", "account", "1", "region", "eu-west-1", "asg", "asg-ng-1", "nodegroup", "ng-1"))
		for i := 1; i <= 5; i++ {
			n := fmt.Sprintf("node-%d", i)
			ss = append(ss,
				j("1", "__name__", "upgradeguard_aws_asg_instance_info", "account", "1", "region", "eu-west-1", "asg", "asg-ng-1", "nodegroup", "ng-1",
					"instance_id", "i-"+n, "zone", "eu-west-1a", "lifecycle_state", "InService"),
				j(created, "__name__", "upgradeguard_aws_asg_instance_launch_time_seconds", "account", "1", "region", "eu-west-1", "asg", "asg-ng-1", "instance_id", "i-"+n))
		}
	}
	return ss
}

// A shard that is gone is not "all nodes ready". Before,
// the gate without --node said GO, "2 of 2 ready", in this cluster of 5
// nodes, and so did --nodegroup.
func TestMissingShardIsUnknown(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	f.set(shardedCluster(false, false, false)...)
	e := eval(t, g, "")
	if e.Verdict == GO {
		t.Errorf("GO with shard 1 of 2 missing:\n%s", dump(e))
	}
	const why = "exporter shard 1 of 2 is missing (no upgradeguard_exporter_total_shards series; reporting: 0 of 2)"
	for _, name := range []string{"nodes/ready", "nodes/heartbeat", "nodes/transitions"} {
		wantRow(t, e, name, Unknown, why)
	}
	if r := row(t, e, "nodes/ready"); r.Value != "2 of 2 ready (shard 1 of 2 missing)" {
		t.Errorf("nodes/ready value %q", r.Value)
	}
	// The rows that do not read the shards' per-node series are unchanged.
	for _, name := range []string{"monitoring/up", "monitoring/collectors", "alerts", "availability/services", "availability/workloads", "availability/pdbs"} {
		wantRow(t, e, name, Pass, "")
	}

	// --nodegroup: the group's node list comes from the shards too.
	gg, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) { c.NodeGroup = "ng-1" })
	e = eval(t, gg, "")
	for _, name := range []string{"nodes/ready", "drain/pdb", "drain/unmanaged", "drain/local-storage"} {
		wantRow(t, e, name, Unknown, why)
	}

	// --node: the nodes rows still judge every other node; the drain rows
	// of a node whose shard reports are complete, and those of a node on
	// the missing shard say it may be there.
	e = eval(t, g, "node-1")
	wantRow(t, e, "nodes/ready", Unknown, why)
	for _, name := range []string{"drain/pdb", "drain/unmanaged", "drain/local-storage"} {
		wantRow(t, e, name, Pass, "")
	}
	e = eval(t, g, "node-4")
	wantRow(t, e, "drain/pdb", Unknown, "node node-4 may be on the missing shard: "+why)

	// Shard 1 back, node-4 reported NotReady: FAIL, as without shards.
	f.set(shardedCluster(true, false, false)...)
	wantRow(t, eval(t, g, ""), "nodes/ready", Fail, "not ready: node-4")
	// Both shards, every node Ready (and every Auto Scaling instance with
	// its node: without those series nodes/groups is UNKNOWN): GO, with no
	// request more than without shards.
	f.set(shardedCluster(true, true, true)...)
	e = eval(t, g, "")
	if e.Verdict != GO {
		t.Errorf("both shards healthy: %s\n%s", e.Verdict, dump(e))
	}
	if r := row(t, e, "nodes/ready"); r.Value != "5 of 5 ready" || r.Why != "" {
		t.Errorf("nodes/ready %q %q", r.Value, r.Why)
	}
	f.set(healthy()...)
	if unsharded := eval(t, g, ""); unsharded.Queries != e.Queries {
		t.Errorf("%d requests with shards, %d without", e.Queries, unsharded.Queries)
	}
}

// A missing shard does not hide a node reported NotReady (FAIL stays FAIL,
// the shard named); another cluster's complete set of shards in the same
// Thanos does not stand for this cluster's (the policy's matchers).
func TestMissingShardKeepsFailAndIgnoresOtherClusters(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	ss := replace(shardedCluster(false, true, false), "0", "__name__", "upgradeguard_node_ready", "node", "node-2")
	f.set(ss...)
	wantRow(t, eval(t, g, ""), "nodes/ready", Fail, "not ready: node-2; exporter shard 1 of 2 is missing")

	for _, shard := range []string{"0", "1"} {
		ss = append(ss, ser("2", "__name__", "upgradeguard_exporter_total_shards", "shard", shard, "job", "upgradeguard", "instance", "10.9.0."+shard+":9741", "cluster", "staging"))
	}
	f.set(replace(ss, "1", "__name__", "upgradeguard_node_ready", "node", "node-2")...)
	wantRow(t, eval(t, g, ""), "nodes/ready", Unknown, "exporter shard 1 of 2 is missing")
}

// An unsharded exporter (shard 0 of 1) is judged as before; exporters
// older than the gate, without the shard series, too, with a note.
func TestUnshardedExporter(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	ss := append(healthy(), ser("1", "__name__", "upgradeguard_exporter_total_shards", "shard", "0", "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod"))
	f.set(ss...)
	e := eval(t, g, "node-b")
	if e.Verdict != GO {
		t.Fatalf("unsharded: %s\n%s", e.Verdict, dump(e))
	}
	for _, name := range []string{"nodes/ready", "nodes/heartbeat", "nodes/transitions", "nodes/groups", "drain/pdb"} {
		if r := row(t, e, name); r.Status != Pass || strings.Contains(r.Why, "shard") {
			t.Errorf("%s: %s %q", name, r.Status, r.Why)
		}
	}
	f.set(healthy()...)
	e = eval(t, g, "node-b")
	if e.Verdict != GO {
		t.Fatalf("without shard series: %s\n%s", e.Verdict, dump(e))
	}
	wantRow(t, e, "nodes/ready", Pass, "no upgradeguard_exporter_total_shards series: exporters older than the gate")
}

// nodes/groups: instances without a node while a shard is missing may
// have it there: UNKNOWN, not "short of nodes"; with every instance's node
// reported the missing shard cannot change the row.
func TestMissingShardNodeGroups(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	f.set(shardedCluster(false, true, true)...)
	e := eval(t, g, "")
	wantRow(t, e, "nodes/groups", Unknown, "exporter shard 1 of 2 is missing")
	wantRow(t, e, "nodes/groups", Unknown, "InService instances without a node series may have it on the missing shard: i-node-3, i-node-4, i-node-5; node group short of nodes: asg-ng-1 (node group ng-1): 3 of 5")
	// Found end to end: the missing shard's nodes were there after the last
	// AWS refresh, so the row set their instances aside and passed.
	ss := shardedCluster(false, true, true)
	for _, n := range []string{"node-3", "node-4", "node-5"} {
		ss = append(ss, ser("1", "__name__", "present:upgradeguard_node_info", "node", n, "instance_id", "i-"+n, "job", "upgradeguard", "cluster", "prod"))
	}
	f.set(ss...)
	wantRow(t, eval(t, g, ""), "nodes/groups", Unknown, "i-node-3, i-node-4, i-node-5; set aside")
	f.set(shardedCluster(true, true, true)...)
	e = eval(t, g, "")
	wantRow(t, e, "nodes/groups", Pass, "")
	if e.Verdict != GO {
		t.Errorf("%s\n%s", e.Verdict, dump(e))
	}
	// Every instance with its node, and a shard serving other nodes gone:
	// the row stands, noting it.
	f.set(replace(shardedCluster(true, true, true), "3", "__name__", shardsMetric)...)
	e = eval(t, g, "")
	wantRow(t, e, "nodes/groups", Pass, "does not need it")
	wantRow(t, e, "nodes/ready", Unknown, "exporter shard 2 of 3 is missing")
}

func TestCoverShards(t *testing.T) {
	for _, c := range []struct {
		name    string
		shards  [][2]string // shard label, value
		missing []string
		bad     bool
	}{
		{"unsharded", [][2]string{{"0", "1"}}, nil, false},
		{"two of two", [][2]string{{"1", "2"}, {"0", "2"}}, nil, false},
		{"one of two", [][2]string{{"0", "2"}}, []string{"1 of 2"}, false},
		{"shard 0 gone", [][2]string{{"1", "3"}, {"2", "3"}}, []string{"0 of 3"}, false},
		{"the same shard twice (two pods)", [][2]string{{"0", "2"}, {"0", "2"}, {"1", "2"}}, nil, false},
		// A StatefulSet going from 2 to 3 shards updates pod 2, then 1, then
		// 0: every node is still served once pods 1 and 2 run with 3
		// (a node moves, if at all, to shard 2).
		{"2 to 3, pods 1 and 2 updated", [][2]string{{"0", "2"}, {"1", "3"}, {"2", "3"}}, nil, false},
		{"2 to 3, pod 1 restarting", [][2]string{{"0", "2"}, {"2", "3"}}, []string{"1 of 3"}, false},
		{"2 to 3, pod 2 not started", [][2]string{{"0", "2"}, {"1", "2"}}, nil, false},
		// 3 to 2: pod 2 is gone before pods 0 and 1 restart with 2.
		{"3 to 2, pod 2 gone first", [][2]string{{"0", "3"}, {"1", "3"}}, []string{"2 of 3"}, false},
		{"disagreeing for good", [][2]string{{"0", "2"}, {"1", "3"}}, []string{"2 of 3"}, false},
		{"an unsharded exporter beside shards", [][2]string{{"0", "1"}, {"1", "2"}}, nil, false},
		{"no index", [][2]string{{"", "2"}, {"0", "1"}}, nil, true},
		{"index past the total", [][2]string{{"2", "2"}, {"0", "1"}}, nil, true},
		{"NaN", [][2]string{{"0", "NaN"}}, nil, true},
		{"fraction", [][2]string{{"0", "1.5"}}, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ss []sample
			for _, s := range c.shards {
				v, _ := strconv.ParseFloat(s[1], 64)
				ss = append(ss, sample{labels: map[string]string{"__name__": shardsMetric, "shard": s[0]}, value: v})
			}
			cov := coverShards(ss)
			var missing []string
			for _, m := range cov.missing {
				missing = append(missing, m.String())
			}
			if !slices.Equal(missing, c.missing) || (len(cov.bad) > 0) != c.bad || cov.complete() != (c.missing == nil && !c.bad) {
				t.Errorf("missing %q bad %q complete %v, want missing %q bad %v", missing, cov.bad, cov.complete(), c.missing, c.bad)
			}
			if len(cov.totals) > 1 && !strings.Contains(cov.why(), "disagree on --total-shards") {
				t.Errorf("why %q", cov.why())
			}
		})
	}
}
