package gate

import "testing"

// The cloud node lifecycle controller adds its shutdown taint to a NotReady
// node whose instance is stopped, and removes it only once the node is
// Ready again (k8s.io/cloud-provider controllers/nodelifecycle
// MonitorNodes): a stopped or warm-pool instance started again whose node
// stays NotReady (its CNI broken by the new configuration, say) keeps the
// taint while its kubelet renews its Lease. A kubelet heartbeat says the
// machine is up: such a node is judged, not set aside as shut down.
func TestShutDownTaintOnALiveKubelet(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	taint := ser("1", "__name__", "upgradeguard_node_spec_taint", "node", "node-c", "key", "node.cloudprovider.kubernetes.io/shutdown", "value", "", "effect", "NoSchedule",
		"job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")
	kubeletAlert := ser("1", "__name__", "ALERTS", "alertname", "KubeNodeNotReady", "alertstate", "firing", "severity", "warning", "node", "node-c", "cluster", "prod")
	// node-c NotReady, its Lease renewed 12 s ago (lease duration 40 s).
	notReady := replace(healthy(), "0", "__name__", "upgradeguard_node_ready", "node", "node-c")
	f.set(append(append([]series(nil), notReady...), taint, kubeletAlert)...)
	e := eval(t, g, "node-a")
	wantRow(t, e, "nodes/ready", Fail, "not ready: node-c")
	wantRow(t, e, "alerts", Fail, "KubeNodeNotReady{severity=warning,node=node-c}")
	if e.Verdict == GO {
		t.Errorf("GO with node-c NotReady and its kubelet alive:\n%s", dump(e))
	}
	// The same node with its Lease unrenewed is shut down: set aside.
	stopped := replace(notReady, "300", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", "node-c")
	f.set(append(append([]series(nil), stopped...), taint, kubeletAlert)...)
	e = eval(t, g, "node-a")
	wantRow(t, e, "nodes/ready", Pass, "set aside, shut down (serving nothing): node-c (tainted node.cloudprovider.kubernetes.io/shutdown)")
	if e.Verdict != GO {
		t.Errorf("a shut-down node blocks:\n%s", dump(e))
	}
}
