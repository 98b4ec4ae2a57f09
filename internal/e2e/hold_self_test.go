package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// holdSelfRules: the fault switch, and kube-prometheus'
// KubeDeploymentReplicasMismatch as it would fire on the hold's own
// Deployment (here on the exporter's series, without its 15 minutes, with
// its namespace and deployment labels).
const holdSelfRules = `groups:
- name: holdselftest
  rules:
  - alert: HoldSelfTestFault
    expr: hold_self_test_fault > 0
    labels:
      severity: warning
  - alert: KubeDeploymentReplicasMismatch
    expr: upgradeguard_deployment_spec_replicas > upgradeguard_deployment_status_replicas_available
    labels:
      severity: warning
`

// TestGateHoldDoesNotHoldItself: deploy/hold's pod is not
// ready while the gate says WAIT, so its Deployment has 0 of 1 available
// and an alert fires on it; once the real fault clears, the hold must say
// GO again within a few evaluations under the default policy (availability
// on, a 10-minute window), not stay WAIT for the window because of itself.
// Real components: kube-apiserver, controller-manager (the Deployment's
// status), the exporter, two Prometheus replicas and Thanos Query, the hold
// binary with deploy/hold's Deployment and RBAC, its readiness probe run by
// a fake kubelet against the real /gate.
func TestGateHoldDoesNotHoldItself(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "holdself.rules.yml")
	if err := os.WriteFile(rules, []byte(holdSelfRules), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{rules}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	for i := range 2 {
		if err := tb.CreateNode(ctx, testbed.Node{Name: fmt.Sprintf("blue-%d", i), Zone: "eu-west-1a", InstanceType: "m5.large", NodeGroup: "nodes-blue"}); err != nil {
			t.Fatal(err)
		}
	}
	startExporter(t, tb, bin, "")
	fault, stopFault, err := tb.ServeGauge("holdselftest", "hold_self_test_fault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopFault)

	kubelet, pod := deployHold(ctx, t, tb)
	policy := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(policy, []byte(holdSelfPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &holdContainer{
		t: t, tb: tb, bin: bin, pod: pod, kubeconfig: saKubeconfig(ctx, t, tb, "upgradeguard", "upgradeguard-hold"),
		addr: freeAddr(t), health: freeAddr(t),
		extra: []string{"--policy", policy, "--stop-after", "0s"},
	}
	// The hold starts once the exporter's Deployment series and the fault
	// switch are in Thanos.
	err = testbed.WaitFor(ctx, 3*time.Minute, "the hold's Deployment and the fault switch in Thanos", func(ctx context.Context) (bool, error) {
		d, err := tb.QueryThanos(ctx, `upgradeguard_deployment_spec_replicas{deployment="upgradeguard-hold"}`, true)
		if err != nil {
			return false, err
		}
		f, err := tb.QueryThanos(ctx, `hold_self_test_fault`, true)
		if err != nil {
			return false, err
		}
		return len(d) == 1 && len(f) == 1, fmt.Errorf("%d Deployment series, %d fault series", len(d), len(f))
	})
	if err != nil {
		t.Fatal(err)
	}
	podReady := runHold(ctx, t, tb, h, kubelet, pod)
	err = testbed.WaitFor(ctx, 4*time.Minute, "the hold's pod ready (GO) and its Deployment available in Thanos", func(ctx context.Context) (bool, error) {
		if exited, err := h.proc.Exited(); exited {
			t.Fatalf("gate hold exited: %v", err)
		}
		if ok, err := podReady(ctx); !ok || err != nil {
			return false, fmt.Errorf("pod not ready (%v)", err)
		}
		v, err := tb.QueryThanos(ctx, `upgradeguard_deployment_status_replicas_available{deployment="upgradeguard-hold"} == 1`, true)
		return err == nil && len(v) == 1, fmt.Errorf("available series %v (%v)", v, err)
	})
	if err != nil {
		t.Fatal(err)
	}

	// The fault: WAIT, the pod unready, the Deployment at 0 available (and
	// the mismatch alert firing) in Thanos; the window now holds 1.
	fault.Store(1)
	err = testbed.WaitFor(ctx, 3*time.Minute, "the hold's Deployment at 0 available and KubeDeploymentReplicasMismatch firing", func(ctx context.Context) (bool, error) {
		if ok, err := podReady(ctx); ok || err != nil {
			return false, fmt.Errorf("pod still ready (%v)", err)
		}
		a, err := tb.QueryThanos(ctx, `ALERTS{alertname="KubeDeploymentReplicasMismatch", alertstate="firing", namespace="upgradeguard", deployment="upgradeguard-hold"}`, true)
		return err == nil && len(a) > 0, fmt.Errorf("mismatch alert %v (%v)", a, err)
	})
	if err != nil {
		t.Fatal(err)
	}
	// What a `gate check` sees now: WAIT for the fault alone; the hold's own
	// Deployment and the alert on it are set aside and named.
	p, err := gate.ParsePolicy([]byte(holdSelfPolicy))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{URL: tb.ThanosQueryURL, QueryTimeout: 10 * time.Second}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := g.Evaluate(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]gate.CheckResult{}
	for _, c := range e.Checks {
		rows[c.Name] = c
	}
	if r := rows["availability/workloads"]; r.Status != gate.Pass || !strings.Contains(r.Why, "set aside, the gate hold's own, ready only while the gate says GO: deployment upgradeguard/upgradeguard-hold") {
		t.Errorf("availability/workloads during the fault: %s %q", r.Status, r.Why)
	}
	if r := rows["alerts"]; r.Status != gate.Fail || !strings.Contains(r.Why, "HoldSelfTestFault") || strings.Contains(r.Why, "KubeDeploymentReplicasMismatch{severity=warning,namespace=upgradeguard},") ||
		!strings.Contains(r.Why, "KubeDeploymentReplicasMismatch{severity=warning,namespace=upgradeguard} on deployment upgradeguard/upgradeguard-hold") {
		t.Errorf("alerts during the fault: %s %q, want the fault blocking and the mismatch set aside", r.Status, r.Why)
	}

	// The fault clears: GO within a few evaluations, though the hold's
	// Deployment is still at 0 (it becomes available only after GO) and the
	// mismatch alert still fires.
	fault.Store(0)
	cleared := time.Now()
	err = testbed.WaitFor(ctx, 2*time.Minute, "the hold's pod ready again (GO) after the fault cleared", func(ctx context.Context) (bool, error) {
		ok, err := podReady(ctx)
		return ok && err == nil, fmt.Errorf("pod not ready (%v)", err)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: fault cleared in the gauge -> the hold's pod ready again: %s", time.Since(cleared).Round(100*time.Millisecond))
}
