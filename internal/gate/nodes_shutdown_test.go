package gate

import (
	"testing"
)

// A node whose machine is shut down (the cloud node
// lifecycle controller's shutdown taint on a stopped or warm-pool instance,
// or an operator's out-of-service taint) is NotReady and serves nothing:
// set aside and named, not "not ready". Before, every gate answered WAIT.
// Its sibling: the AWS Node Termination Handler's taints mark nodes on their
// way out, like the cluster autoscaler's and Karpenter's.
func TestShutDownNodesSetAside(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	j := func(value string, kv ...string) series {
		return ser(value, append(kv, "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")...)
	}
	taint := func(node, key string) series {
		return j("1", "__name__", "upgradeguard_node_spec_taint", "node", node, "key", key, "value", "", "effect", "NoSchedule")
	}
	// node-c: NotReady, its Lease long unrenewed.
	notReadyC := replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-c")
	notReadyC = replace(notReadyC, "300", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c")
	for _, c := range []struct {
		name   string
		extra  []series
		policy string
		st     Status
		why    string
	}{
		{"cloud provider's shutdown taint", []series{taint("node-c", "node.cloudprovider.kubernetes.io/shutdown")}, "",
			Pass, "set aside, shut down (serving nothing): node-c (tainted node.cloudprovider.kubernetes.io/shutdown)"},
		{"out-of-service taint", []series{taint("node-c", "node.kubernetes.io/out-of-service")}, "",
			Pass, "set aside, shut down (serving nothing): node-c (tainted node.kubernetes.io/out-of-service)"},
		{"shut down and leaving", []series{taint("node-c", "node.cloudprovider.kubernetes.io/shutdown"), taint("node-c", "ToBeDeletedByClusterAutoscaler")}, "",
			Pass, "shut down (serving nothing): node-c"},
		{"termination handler's Spot interruption taint", []series{taint("node-c", "aws-node-termination-handler/spot-itn")}, "",
			Pass, "set aside, on their way out: node-c (tainted aws-node-termination-handler/spot-itn)"},
		{"termination handler's lifecycle hook taint", []series{taint("node-c", "aws-node-termination-handler/asg-lifecycle-termination")}, "",
			Pass, "node-c (tainted aws-node-termination-handler/asg-lifecycle-termination)"},
		// A rebalance recommendation is not a termination.
		{"termination handler's rebalance taint", []series{taint("node-c", "aws-node-termination-handler/rebalance-recommendation")}, "",
			Fail, "not ready: node-c"},
		// The node lifecycle controller's own taints are what the gate
		// looks for.
		{"unreachable taint", []series{taint("node-c", "node.kubernetes.io/unreachable")}, "",
			Fail, "not ready: node-c"},
		{"the shut-down list is the policy's", []series{taint("node-c", "node.cloudprovider.kubernetes.io/shutdown")}, "nodes: {shut_down_taints: []}",
			Fail, "not ready: node-c"},
	} {
		t.Run(c.name, func(t *testing.T) {
			gg := g
			if c.policy != "" {
				gg, _ = newGate(t, f, testPolicy(t, c.policy))
			}
			f.set(append(append([]series(nil), notReadyC...), c.extra...)...)
			e := eval(t, gg, "node-a")
			wantRow(t, e, "nodes/ready", c.st, c.why)
			if c.st == Pass {
				if e.Verdict != GO {
					t.Errorf("a node set aside blocks node-a:\n%s", dump(e))
				}
				wantRow(t, e, "nodes/heartbeat", Pass, "")
				wantRow(t, e, "nodes/transitions", Pass, "")
			} else if e.Verdict == GO {
				t.Errorf("GO with node-c NotReady:\n%s", dump(e))
			}
		})
	}
	// The node group row sets it aside too: a stopped instance still
	// InService in the last Auto Scaling data is the group's to replace.
	// Its Lease unrenewed, as a stopped machine's is.
	stoppedB := replace(replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-b"),
		"300", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-b")
	f.set(append(stoppedB, taint("node-b", "node.cloudprovider.kubernetes.io/shutdown"))...)
	e := eval(t, g, "node-a")
	wantRow(t, e, "nodes/groups", Pass, "i-node-b (node node-b shut down, tainted node.cloudprovider.kubernetes.io/shutdown)")
	wantRow(t, e, "nodes/ready", Pass, "node-b (tainted node.cloudprovider.kubernetes.io/shutdown)")
	if e.Verdict != GO {
		t.Errorf("a shut-down node blocks:\n%s", dump(e))
	}
	// Sibling: kube-prometheus' KubeNodeNotReady fires for the same node
	// after 15 minutes; through the alerts row it held the gate.
	nodeAlert := func(node string) series {
		return ser("1", "__name__", "ALERTS", "alertname", "KubeNodeNotReady", "alertstate", "firing", "severity", "warning", "node", node, "cluster", "prod")
	}
	f.set(append(append([]series(nil), notReadyC...), taint("node-c", "node.cloudprovider.kubernetes.io/shutdown"), nodeAlert("node-c"))...)
	e = eval(t, g, "node-a")
	wantRow(t, e, "alerts", Pass, "set aside, on nodes shut down (serving nothing): KubeNodeNotReady{severity=warning,node=node-c} (node node-c tainted node.cloudprovider.kubernetes.io/shutdown)")
	if e.Verdict != GO {
		t.Errorf("an alert on a shut-down node blocks:\n%s", dump(e))
	}
	// The same alert on a node that is not shut down still blocks.
	f.set(append(append([]series(nil), notReadyC...), nodeAlert("node-c"))...)
	wantRow(t, eval(t, g, "node-a"), "alerts", Fail, "KubeNodeNotReady{severity=warning,node=node-c}")
}
