package roll

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A node where one pod can never be evicted is left as it was: the Eviction
// API, asked with dryRun before the cordon, refuses it for good (two
// budgets select it; or its budget has maxUnavailable 0), so the roll stops
// naming the pod and the reason, and evicts nothing, not even the pods that
// could go. A 429 from a budget that will free up is not a stop.
func TestPreflightLeavesNodeUntouched(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		setup      func(c *cluster, node string)
	}{
		{"two budgets", "shop/ledger-1: selected by more than one PodDisruptionBudget", func(c *cluster, node string) {
			c.multiPDB["shop/ledger-1"] = true
		}},
		{"budget at maxUnavailable 0", "shop/ledger-1: PodDisruptionBudget shop/ledger has maxUnavailable 0", func(c *cluster, node string) {
			zero := intstr.FromInt32(0)
			if _, err := c.client.PolicyV1().PodDisruptionBudgets("shop").Create(context.Background(), &policyv1.PodDisruptionBudget{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ledger"}, Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &zero},
			}, metav1.CreateOptions{}); err != nil {
				c.t.Fatal(err)
			}
			c.refuse["shop/ledger-1"] = refusal429{n: 1 << 30, pdb: "ledger"}
		}},
	} {
		c := rollCluster(t, 2)
		first := c.groupNodes("nodes")[0]
		c.addPod(pod{ns: "shop", name: "ledger-1", node: first, owner: "ledger"})
		tc.setup(c, first)
		var out bytes.Buffer
		_, err := Run(context.Background(), c.rollConfig(&script{}, &out))
		var pe *PreflightError
		if !errors.As(err, &pe) || pe.ExitCode() != 4 || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "node "+first+" left as it was (not cordoned, nothing evicted)") {
			t.Errorf("%s: got %v, want the node left as it was, naming %q\n%s", tc.name, err, tc.want, out.String())
			continue
		}
		if len(c.evictions) != 0 {
			t.Errorf("%s: evicted %v before stopping", tc.name, c.evictions)
		}
		if n := c.node(first); n.Spec.Unschedulable {
			t.Errorf("%s: node cordoned", tc.name)
		}
		if c.dryRuns == 0 {
			t.Errorf("%s: the Eviction API was not asked with dryRun", tc.name)
		}
	}

	// A budget that refuses now (429) but can allow later: the roll goes on
	// and the drain waits for it.
	c := rollCluster(t, 2)
	first := c.groupNodes("nodes")[0]
	c.refuse["shop/web-"+first] = refusal429{n: 3, pdb: "web"}
	var out bytes.Buffer
	if _, err := Run(context.Background(), c.rollConfig(&script{}, &out)); err != nil {
		t.Errorf("a budget that frees up stopped the roll: %v\n%s", err, out.String())
	}
}

// The dry run shows what the Eviction API says.
func TestDryRunAsksEvictionAPI(t *testing.T) {
	c := rollCluster(t, 2)
	first := c.groupNodes("nodes")[0]
	c.addPod(pod{ns: "shop", name: "ledger-1", node: first, owner: "ledger"})
	c.multiPDB["shop/ledger-1"] = true
	var out bytes.Buffer
	cfg := c.rollConfig(nil, &out)
	cfg.DryRun, cfg.Canary, cfg.CanarySoak = true, 1, 15*time.Minute
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"EVICTION API REFUSES 1 for good: shop/ledger-1: selected by more than one PodDisruptionBudget",
		"dry run: group nodes: AZRebalance, AlarmNotification, InstanceRefresh, ScheduledActions suspended while the roll runs",
		"dry run: canary phase: nodes 1-1, then a soak of 15m0s",
		"1 canary",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out.String())
		}
	}
	if len(c.evictions) != 0 || c.node(first).Spec.Unschedulable {
		t.Error("the dry run changed something")
	}
}
