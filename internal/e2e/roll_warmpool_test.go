package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// runWarmPool is the warm pool end to end: a group with a warm pool
// whose refills EC2 refuses. Each replacement is a warm instance ("from
// warm pool"), the refill after it fails, and the roll replaces both nodes
// and exits 0. (Before, the failed refill stopped the roll at once, exit
// 5, as if the replacement had failed, with the old node terminated.)
func (h *hazards) runWarmPool(ctx context.Context, t *testing.T) {
	e, tb := h.e, h.e.tb
	t.Run("a group with a warm pool: replacements from the pool, a failed refill does not stop the roll", func(t *testing.T) {
		e.t = t
		if _, err := h.acct.AddASG(awsfake.ASGSpec{Name: "nodes-warm", LaunchTemplate: h.lt, Min: 1, Max: 4, Desired: 2, Subnets: h.subnets, Tags: h.tags}); err != nil {
			t.Fatal(err)
		}
		if err := h.acct.PutWarmPool("nodes-warm", awsfake.WarmPool{MinSize: 2}); err != nil {
			t.Fatal(err)
		}
		_, warm, _ := h.acct.WarmPoolOf("nodes-warm")
		if len(warm) != 2 {
			t.Fatalf("%d warm instances, want 2", len(warm))
		}
		one := intstr.FromInt32(1)
		w := testbed.Workload{Namespace: "warm", Name: "web", Replicas: 2, MaxUnavailable: &one,
			NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: "nodes-warm"}}
		if err := tb.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
		h.waitReady(ctx, t, w)
		err := testbed.WaitFor(ctx, 2*time.Minute, "the warm group's drain series in Thanos", func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, `upgradeguard_node_drainable{node=~"ip-10-1-.*"}`, true)
			if err != nil {
				return false, err
			}
			seen := 0
			for name := range e.groupNodes(ctx, "nodes-warm") {
				for _, s := range r {
					if s.Metric["node"] == name {
						seen++
					}
				}
			}
			return seen == 2, fmt.Errorf("%d of 2", seen)
		})
		if err != nil {
			t.Fatal(err)
		}
		old := h.names(ctx, "nodes-warm")
		if err := h.acct.FailLaunches(awsfake.LaunchFault{Group: "nodes-warm", Code: awsfake.InsufficientInstanceCapacity}); err != nil {
			t.Fatal(err)
		}
		defer h.acct.ClearLaunchFaults()
		began := time.Now()
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-warm", "--gate-timeout", "5m")
		code := run.exitCode()
		out := run.out.String()
		if code != 0 {
			t.Fatalf("roll exited %d after %s:\n%s", code, time.Since(began).Round(time.Second), out)
		}
		t.Logf("roll of 2 nodes from a warm pool whose refills fail took %s:\n%s", time.Since(began).Round(time.Second), out)
		for _, wi := range warm {
			if !strings.Contains(out, "instance "+wi.ID+" entered group nodes-warm from warm pool") {
				t.Errorf("warm instance %s was not a replacement", wi.ID)
			}
		}
		now := h.names(ctx, "nodes-warm")
		for _, name := range old {
			if slices.Contains(now, name) {
				t.Errorf("old node %s still there (%v)", name, now)
			}
		}
		refills := 0
		for _, x := range h.acct.ScalingActivities("nodes-warm") {
			if x.StatusCode == "Failed" && strings.HasPrefix(x.Description, "Launching a new EC2 instance into warm pool") {
				refills++
			}
		}
		if refills == 0 {
			t.Error("no refill of the warm pool failed: the case did not happen")
		}
		h.waitReady(ctx, t, w)
	})

	// A claimed replacement replaced, end to end: the instance the roll
	// claimed is replaced by Auto Scaling's health check before its node is Ready (a
	// kubelet that never registers as it: its node names another
	// instance). The roll says so and follows the group's next instance,
	// and exits 0. (Before, it waited on the first for --node-timeout, 3m,
	// then exited 1 with the old node gone.)
	t.Run("a claimed replacement replaced by Auto Scaling: the roll follows the next", func(t *testing.T) {
		e.t = t
		h.acct.ClearLaunchFaults() // the pool refills
		var doomed atomic.Value
		doomed.Store("")
		// This case's hooks: the first instance to enter nodes-warm gets a
		// node that is not its own; every terminated instance's node goes.
		tb.BackInstances(ctx, h.acct, func(inst awsfake.Instance, n *testbed.Node) {
			if inst.ASG == "nodes-warm" && doomed.CompareAndSwap("", inst.ID) {
				n.ProviderID = fmt.Sprintf("aws:///%s/i-00000000000000000", inst.AZ)
			}
		})
		h.acct.OnTerminate(func(inst awsfake.Instance) {
			_ = tb.Client.CoreV1().Nodes().Delete(context.Background(), testbed.InstanceNodeName(inst, h.acct.Region), metav1.DeleteOptions{})
		})
		target := h.names(ctx, "nodes-warm")[0]
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-warm", "--selector", corev1.LabelHostname+"="+target, "--gate-timeout", "5m")
		err := testbed.WaitFor(ctx, 2*time.Minute, "the roll claiming the first new instance", func(ctx context.Context) (bool, error) {
			id, _ := doomed.Load().(string)
			return id != "" && strings.Contains(run.out.String(), "instance "+id+" entered group nodes-warm"), fmt.Errorf("doomed %q", id)
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, run.out.String())
		}
		id := doomed.Load().(string)
		if err := h.acct.ReplaceUnhealthy(id); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		code := run.exitCode()
		out := run.out.String()
		if code != 0 {
			t.Fatalf("roll exited %d %s after the claimed instance was replaced:\n%s", code, time.Since(began).Round(time.Second), out)
		}
		t.Logf("roll, the claimed instance replaced by Auto Scaling:\n%s", out)
		if !strings.Contains(out, "instance "+id+" left group nodes-warm before its node was Ready") ||
			!strings.Contains(out, "in response to an EC2 health check") {
			t.Errorf("the roll does not say that the claimed instance %s left the group, with Auto Scaling's cause", id)
		}
		if slices.Contains(h.names(ctx, "nodes-warm"), target) {
			t.Errorf("old node %s still there", target)
		}
		// Back to the suite's hooks.
		tb.BackInstances(ctx, h.acct, nil)
	})
}
