package gate

import (
	"strconv"
	"testing"
	"time"
)

// An Auto Scaling group with 3 instances in service whose
// third never registered as a node is short of a node: not GO.
func TestNodeGroupShortOfNodes(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	j := func(value string, kv ...string) series {
		return ser(value, append(kv, "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")...)
	}
	ago := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(-d).Unix(), 10) }
	instance := func(id, state string, launched time.Duration) []series {
		ss := []series{j("1", "__name__", "upgradeguard_aws_asg_instance_info", "account", "1", "region", "eu-west-1", "asg", "asg-nodes-a", "nodegroup", "nodes-a",
			"instance_id", id, "zone", "eu-west-1a", "lifecycle_state", state)}
		if launched > 0 {
			ss = append(ss, j(ago(launched), "__name__", "upgradeguard_aws_asg_instance_launch_time_seconds", "account", "1", "region", "eu-west-1", "asg", "asg-nodes-a", "instance_id", id))
		}
		return ss
	}
	f.set(append(healthy(), instance("i-0third", "InService", 48*time.Hour)...)...)
	e := eval(t, g, "node-a")
	wantRow(t, e, "nodes/groups", Fail, "node group short of nodes: asg-nodes-a (node group nodes-a): 1 of 3 InService instances without a node: i-0third (no node)")
	wantRow(t, e, "nodes/ready", Pass, "")
	if r := row(t, e, "nodes/groups"); r.Value != "Ready nodes / InService instances: asg-nodes-a (node group nodes-a) 2/3 (desired 2), asg-nodes-b (node group nodes-b) 2/2 (desired 2)" {
		t.Errorf("value %q", r.Value)
	}
	// The instance a roll has just terminated: its node went away after the
	// Auto Scaling data was taken (2 minutes ago), which still says
	// InService. Not short: set aside until the next refresh (the demo's
	// roll paused on each node it had just replaced).
	f.set(append(healthy(), append(instance("i-0third", "InService", 48*time.Hour),
		j("1", "__name__", "present:upgradeguard_node_info", "node", "node-gone", "instance_id", "i-0third"))...)...)
	e = eval(t, g, "node-a")
	wantRow(t, e, "nodes/groups", Pass, "i-0third (its node went away after the last AWS refresh)")
	if e.Verdict != GO {
		t.Errorf("a just-terminated instance blocks: %s", dump(e))
	}
	// Without the refresh time, whether the node went before or after the
	// data is unknown.
	f.set(append(replace(healthy(), "", "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "collector", "awsquota_usage"),
		instance("i-0third", "InService", 48*time.Hour)...)...)
	wantRow(t, eval(t, g, "node-a"), "nodes/groups", Unknown, "no upgradeguard_aws_refresh_last_success_timestamp_seconds")
	// Launched a minute ago: within the startup grace, named, not blocking.
	f.set(append(healthy(), instance("i-0third", "InService", time.Minute)...)...)
	e = eval(t, g, "node-a")
	wantRow(t, e, "nodes/groups", Pass, "asg-nodes-a (node group nodes-a): i-0third (no node, launched 1m")
	if e.Verdict != GO {
		t.Errorf("a starting instance blocks: %s", dump(e))
	}
	// Without a launch time the grace cannot apply.
	f.set(append(healthy(), instance("i-0third", "InService", 0)...)...)
	wantRow(t, eval(t, g, "node-a"), "nodes/groups", Fail, "i-0third (no node, launch time unknown)")
	// Instances not in service are the Auto Scaling group's business.
	for _, state := range []string{"Pending", "Terminating", "Standby"} {
		f.set(append(healthy(), instance("i-0third", state, 48*time.Hour)...)...)
		wantRow(t, eval(t, g, "node-a"), "nodes/groups", Pass, "")
	}
	// The node of an instance on its way out, or the node to replace, is
	// set aside; a registered node that is not Ready is nodes/ready's.
	f.set(append(replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-b"),
		j("1", "__name__", "upgradeguard_node_spec_taint", "node", "node-b", "key", "ToBeDeletedByClusterAutoscaler", "value", "1", "effect", "NoSchedule"))...)
	wantRow(t, eval(t, g, "node-a"), "nodes/groups", Pass, "i-node-b (node node-b tainted ToBeDeletedByClusterAutoscaler)")
	f.set(replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-b")...)
	e = eval(t, g, "node-b")
	wantRow(t, e, "nodes/groups", Pass, "i-node-b (node node-b, the node to replace)")
	e = eval(t, g, "node-a")
	wantRow(t, e, "nodes/groups", Pass, "registered but not Ready (judged by nodes/ready): asg-nodes-a (node group nodes-a): i-node-b (node node-b)")
	wantRow(t, e, "nodes/ready", Fail, "not ready: node-b")
}

// No Auto Scaling series is missing data, not a group that cannot be short:
// untagged groups, or an exporter without the awsquota collector, used to
// switch the row off quietly (SKIP, and GO). UNKNOWN with the fix; only the
// policy line nodes.groups: false turns the row off.
func TestNodeGroupsWithoutAutoScalingSeries(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	noASG := replace(healthy(), "", "__name__", "upgradeguard_aws_asg_instance_info")

	// The awsquota collector runs but finds no group of the cluster: the
	// groups are not tagged for it.
	f.set(noASG...)
	e := eval(t, g, "node-a")
	wantRow(t, e, "nodes/groups", Unknown, "the awsquota collector runs but finds no Auto Scaling group of the cluster")
	wantRow(t, e, "nodes/groups", Unknown, "tag the cluster's Auto Scaling groups kubernetes.io/cluster/<cluster>")
	wantRow(t, e, "nodes/groups", Unknown, "nodes.groups: false")
	if e.Verdict == GO || e.Passed() {
		t.Errorf("no Auto Scaling series, GO: %s", dump(e))
	}
	if r := row(t, e, "nodes/groups"); r.Value != "no series" {
		t.Errorf("value %q", r.Value)
	}

	// No awsquota collector at all: the fix is to run it.
	f.set(replace(noASG, "", "__name__", "upgradeguard_collector_success", "collector", "awsquota")...)
	e = eval(t, g, "node-a")
	wantRow(t, e, "nodes/groups", Unknown, "no awsquota collector reports")
	wantRow(t, e, "nodes/groups", Unknown, "--collector.awsquota")
	if e.Verdict == GO {
		t.Errorf("no awsquota collector, GO: %s", dump(e))
	}

	// The collector failing: its data is not there to judge.
	f.set(replace(noASG, "0", "__name__", "upgradeguard_collector_success", "collector", "awsquota")...)
	wantRow(t, eval(t, g, "node-a"), "nodes/groups", Unknown, "the awsquota collector fails")

	// Turned off by the policy: SKIP naming the line, and GO.
	off, _ := newGate(t, f, testPolicy(t, "nodes: {groups: false}"))
	f.set(replace(noASG, "", "__name__", "upgradeguard_collector_success", "collector", "awsquota")...)
	e = eval(t, off, "node-a")
	wantRow(t, e, "nodes/groups", Skip, "disabled in the policy (nodes.groups: false)")
	if e.Verdict != GO {
		t.Errorf("nodes.groups: false: %s", dump(e))
	}
	// nodes.enabled: false turns the row off too, and says so.
	none, _ := newGate(t, f, testPolicy(t, "nodes: {enabled: false}"))
	wantRow(t, eval(t, none, "node-a"), "nodes/groups", Skip, "disabled in the policy (nodes.enabled: false)")
}
