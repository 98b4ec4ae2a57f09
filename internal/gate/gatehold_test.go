package gate

import (
	"strings"
	"testing"
	"time"
)

// holdPod is the name the ReplicaSet controller gives a pod of deploy/hold.
const holdPod = "upgradeguard-hold-7c9f6d8b5d-x2x4z"

// heldBySelf is the healthy cluster while gate hold says WAIT: deploy/hold's
// Deployment (2 replicas, ready only on GO) has none available, its Service
// no ready endpoint and its PodDisruptionBudget no healthy pod, all of them
// ready in the window; node-b's drain meets that budget; kube-prometheus'
// alerts fire on them. The exporter marks the three objects as the hold's.
func heldBySelf() []series {
	j := func(value string, kv ...string) series {
		return ser(value, append(kv, "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")...)
	}
	a := func(kv ...string) series {
		return ser("1", append([]string{"__name__", "ALERTS", "alertstate", "firing", "severity", "warning", "cluster", "prod", "namespace", "upgradeguard"}, kv...)...)
	}
	dep := []string{"namespace", "upgradeguard", "deployment", "upgradeguard-hold"}
	svc := []string{"namespace", "upgradeguard", "service", "upgradeguard-hold"}
	pdb := []string{"namespace", "upgradeguard", "pdb", "upgradeguard-hold"}
	ss := replace(healthy(), "0", "__name__", "upgradeguard_node_drainable", "node", "node-b")
	return append(ss,
		j("2", append([]string{"__name__", "max:upgradeguard_deployment_status_replicas_available"}, dep...)...),
		j("2", append([]string{"__name__", "at:upgradeguard_deployment_status_replicas_available"}, dep...)...),
		j("0", append([]string{"__name__", "upgradeguard_deployment_status_replicas_available"}, dep...)...),
		j("2", append([]string{"__name__", "upgradeguard_deployment_spec_replicas"}, dep...)...),
		j("0", append([]string{"__name__", "upgradeguard_deployment_strategy_max_unavailable"}, dep...)...),
		j("1", append([]string{"__name__", "upgradeguard_deployment_gate_hold"}, dep...)...),
		j("2", append([]string{"__name__", "max:upgradeguard_service_endpoints", "ready", "true"}, svc...)...),
		j("2", append([]string{"__name__", "at:upgradeguard_service_endpoints", "ready", "true"}, svc...)...),
		j("0", append([]string{"__name__", "upgradeguard_service_endpoints", "ready", "true"}, svc...)...),
		j("2", append([]string{"__name__", "upgradeguard_service_endpoints", "ready", "false"}, svc...)...),
		j("1", append([]string{"__name__", "upgradeguard_service_gate_hold"}, svc...)...),
		j("0", append([]string{"__name__", "upgradeguard_pdb_current_healthy"}, pdb...)...),
		j("1", append([]string{"__name__", "upgradeguard_pdb_desired_healthy"}, pdb...)...),
		j("0", append([]string{"__name__", "upgradeguard_pdb_disruptions_allowed"}, pdb...)...),
		j("1", append([]string{"__name__", "upgradeguard_pdb_gate_hold"}, pdb...)...),
		j("1", append([]string{"__name__", "upgradeguard_node_drain_blocked_pods", "node", "node-b", "reason", "budget_exhausted"}, pdb...)...),
		a("alertname", "KubeDeploymentReplicasMismatch", "deployment", "upgradeguard-hold", "container", "kube-state-metrics"),
		a("alertname", "KubePodNotReady", "pod", holdPod),
		a("alertname", "KubeContainerWaiting", "pod", "upgradeguard-hold-7c9f6d8b5d-b2n8q", "container", "hold"),
		a("alertname", "KubeDeploymentRolloutStuck", "deployment", "upgradeguard-hold"),
		a("alertname", "UpgradeGuardPDBDisruptionsNotAllowed", "pdb", "upgradeguard-hold"),
	)
}

// TestGateHoldDoesNotHoldItself: gate hold's own
// Deployment, Service and PDB, unready because the gate does not say GO,
// and the alerts on them, must not make the gate say WAIT under the
// default policy, with or without a baseline taken while they were ready;
// the rows name what they set aside. A real fault next to them still
// blocks.
func TestGateHoldDoesNotHoldItself(t *testing.T) {
	f := newFake(t)
	for _, c := range []struct {
		name string
		mod  func(*Config)
	}{
		{"the window", func(*Config) {}},
		{"a baseline taken while the hold was ready", func(c *Config) {
			c.Baseline = &Baseline{Time: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)}
		}},
	} {
		g, _ := newGate(t, f, testPolicy(t, ""), c.mod)
		f.set(heldBySelf()...)
		e := eval(t, g, "node-b")
		if e.Verdict != GO {
			t.Errorf("%s: the hold's own unreadiness gives %s:\n%s", c.name, e.Verdict, dump(e))
			continue
		}
		for row, want := range map[string]string{
			"availability/workloads": "set aside, the gate hold's own, ready only while the gate says GO: deployment upgradeguard/upgradeguard-hold",
			"availability/services":  "set aside, the gate hold's own, ready only while the gate says GO: service upgradeguard/upgradeguard-hold",
			"availability/pdbs":      "set aside, the gate hold's own, ready only while the gate says GO: pdb upgradeguard/upgradeguard-hold",
			"alerts":                 "KubePodNotReady{severity=warning,namespace=upgradeguard} on pod upgradeguard/" + holdPod,
			"drain/pdb":              "set aside, the gate hold's own, ready only while the gate says GO: upgradeguard/upgradeguard-hold blocks 1 pods (budget exhausted)",
		} {
			wantRow(t, e, row, Pass, want)
		}
		r := row(t, e, "alerts")
		for _, name := range []string{"KubeDeploymentReplicasMismatch", "KubeContainerWaiting", "KubeDeploymentRolloutStuck", "UpgradeGuardPDBDisruptionsNotAllowed"} {
			if !strings.Contains(r.Why, name) {
				t.Errorf("%s: the alerts row does not name %s as set aside: %q", c.name, name, r.Why)
			}
		}
	}

	// Real faults beside the hold still block: another Deployment down,
	// alerts on other pods (one whose Deployment's name begins like the
	// hold's), another namespace's pod of the same name.
	g, _ := newGate(t, f, testPolicy(t, ""))
	f.set(replace(heldBySelf(), "1", "__name__", "upgradeguard_deployment_status_replicas_available", "deployment", "web")...)
	wantRow(t, eval(t, g, "node-b"), "availability/workloads", Fail, "deployment shop/web has 1 available, needs 2")
	for _, kv := range [][]string{
		{"alertname", "KubePodNotReady", "namespace", "upgradeguard", "pod", "upgradeguard-hold-canary-7c9f6d8b5d-x2x4z"},
		{"alertname", "KubePodNotReady", "namespace", "shop", "pod", holdPod},
		{"alertname", "KubeDeploymentReplicasMismatch", "namespace", "shop", "deployment", "web"},
		{"alertname", "KubePodCrashLooping", "namespace", "upgradeguard", "pod", "upgradeguard-exporter-6d5f8c7b9-kq7wz"},
	} {
		f.set(append(heldBySelf(), ser("1", append([]string{"__name__", "ALERTS", "alertstate", "firing", "severity", "warning", "cluster", "prod"}, kv...)...))...)
		wantRow(t, eval(t, g, "node-b"), "alerts", Fail, kv[1]+"{severity=warning,namespace="+kv[3]+"}")
	}
	// Without the exporter's marks (an exporter older than them, or the
	// hold's labels removed), nothing is set aside: it is judged as before.
	f.set(replace(replace(replace(heldBySelf(), "", "__name__", "upgradeguard_deployment_gate_hold"),
		"", "__name__", "upgradeguard_service_gate_hold"), "", "__name__", "upgradeguard_pdb_gate_hold")...)
	e := eval(t, g, "node-b")
	wantRow(t, e, "availability/workloads", Fail, "deployment upgradeguard/upgradeguard-hold has 0 available, needs 2")
	wantRow(t, e, "alerts", Fail, "KubePodNotReady")
}

// TestGateHoldNames: which ReplicaSet and pod names are a Deployment's, as
// its controllers name them (a hash and a random suffix of Kubernetes' safe
// alphabet; a generateName cut at 58 characters), and none of its
// neighbours'.
func TestGateHoldNames(t *testing.T) {
	long := strings.Repeat("a", 50) + "-hold" // 55 characters
	for _, c := range []struct {
		pod, d string
		want   bool
	}{
		{holdPod, "upgradeguard-hold", true},
		{"upgradeguard-hold-5b7d9-q2x4z", "upgradeguard-hold", true},
		// Cut: the ReplicaSet name (55 + 1 + 10) and its dash exceed 58.
		{(long + "-7c9f6d8b5d-")[:58] + "x2x4z", long, true},
		// The Deployment's own name cut.
		{(strings.Repeat("b", 60) + "-")[:58] + "x2x4z", strings.Repeat("b", 60), true},
		{"upgradeguard-hold-canary-7c9f6d8b5d-x2x4z", "upgradeguard-hold", false}, // a Deployment upgradeguard-hold-canary
		{"upgradeguard-hold-0", "upgradeguard-hold", false},                       // a StatefulSet's
		{"upgradeguard-hold-migrate-x2x4z", "upgradeguard-hold", false},           // a Job's: vowels are not generated
		{"upgradeguard-hold-x2x4z", "upgradeguard-hold", false},                   // a bare ReplicaSet's
		{"upgradeguard-holdx-7c9f6d8b5d-x2x4z", "upgradeguard-hold", false},
		{strings.Repeat("a", 63), strings.Repeat("a", 10), false},
	} {
		if got := podOf(c.pod, c.d); got != c.want {
			t.Errorf("podOf(%q, %q) = %v, want %v", c.pod, c.d, got, c.want)
		}
	}
	for rs, want := range map[string]bool{
		"upgradeguard-hold-7c9f6d8b5d": true, "upgradeguard-hold-canary": false, "upgradeguard-hold": false, "upgradeguard-hold-7c9f6d8b5d2": false,
	} {
		if got := replicaSetOf(rs, "upgradeguard-hold"); got != want {
			t.Errorf("replicaSetOf(%q) = %v, want %v", rs, got, want)
		}
	}
	h := gateHold{{"deployment", "upgradeguard", "upgradeguard-hold"}: true}
	for _, c := range []struct {
		kv   []string
		want string
	}{
		{[]string{"namespace", "upgradeguard", "workload", "upgradeguard-hold", "workload_type", "deployment"}, "deployment upgradeguard/upgradeguard-hold"},
		{[]string{"namespace", "upgradeguard", "replicaset", "upgradeguard-hold-7c9f6d8b5d"}, "replicaset upgradeguard/upgradeguard-hold-7c9f6d8b5d"},
		{[]string{"namespace", "upgradeguard", "pod", holdPod, "container", "hold"}, "pod upgradeguard/" + holdPod},
		{[]string{"pod", holdPod}, ""}, // no namespace
		{[]string{"namespace", "upgradeguard", "workload", "upgradeguard-hold", "workload_type", "statefulset"}, ""},
	} {
		if got := h.alertNames(ser("", c.kv...).labels); got != c.want {
			t.Errorf("alertNames(%v) = %q, want %q", c.kv, got, c.want)
		}
	}
}
