package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// hazards is what the roll's hazard cases share with TestRollNodeGroups.
type hazards struct {
	e       *rollEnv
	acct    *awsfake.Account
	subnets []string
	lt      string
	tags    map[string]string
	fault   *atomic.Int64
}

// waitReady waits for a workload's pods to be ready.
func (h *hazards) waitReady(ctx context.Context, t *testing.T, ws ...testbed.Workload) {
	t.Helper()
	err := testbed.WaitFor(ctx, 3*time.Minute, "workloads ready", func(ctx context.Context) (bool, error) {
		for _, w := range ws {
			pods, err := readyPods(ctx, h.e, w.Namespace, w.Name)
			if err != nil || len(pods) != int(w.Replicas) {
				return false, fmt.Errorf("%s: %d of %d ready (%v)", w.Name, len(pods), w.Replicas, err)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (h *hazards) names(ctx context.Context, group string) []string {
	var out []string
	for name := range h.e.groupNodes(ctx, group) {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// run runs the hazard cases: a dead node, a surge roll that unbalances
// the group's zones, a launch that fails, a canary soak with a fault.
func (h *hazards) run(ctx context.Context, t *testing.T) {
	e, tb := h.e, h.e.tb
	green := map[string]string{testbed.DefaultNodeGroupLabel: "nodes-green"}

	t.Run("a dead node in the rolled group is replaced first", func(t *testing.T) {
		e.t = t
		// The earlier cases' workloads go: the gate holds a node whose pods'
		// budgets or Deployments have no room left, and a dead node's pods
		// count as unavailable, so the dead node carries only this workload.
		for _, name := range []string{"sticky", "worker"} {
			_ = tb.Client.AppsV1().Deployments("batch").Delete(ctx, name, metav1.DeleteOptions{})
			_ = tb.Client.PolicyV1().PodDisruptionBudgets("batch").Delete(ctx, name, metav1.DeleteOptions{})
		}
		// A budget with room for the dead node's pods, which stop being
		// ready with it.
		three := intstr.FromInt32(3)
		w := testbed.Workload{Namespace: "dead", Name: "web", Replicas: 4, MaxUnavailable: &three, NodeSelector: green}
		if err := tb.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
		h.waitReady(ctx, t, w)
		// A node with one of the workload's pods loses its kubelet. (One:
		// the gate's availability/workloads check counts the dead node's
		// pods unavailable, and the Deployment's maxUnavailable is 1.)
		pods, _ := readyPods(ctx, e, "dead", "web")
		perNode := map[string]int{}
		for _, p := range pods {
			perNode[p.Spec.NodeName]++
		}
		var dead string
		for n, c := range perNode {
			if dead == "" || c < perNode[dead] || c == perNode[dead] && n < dead {
				dead = n
			}
		}
		if err := tb.StopHeartbeat(ctx, dead); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		if err := testbed.WaitFor(ctx, 3*time.Minute, "the dead node Ready=Unknown", tb.NodeReady(dead, corev1.ConditionUnknown)); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: kubelet stopped; Ready=Unknown after %s; %d of the workload's pods on it", dead, time.Since(stopped).Round(time.Second), perNode[dead])
		old := h.names(ctx, "nodes-green")
		began := time.Now()
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-green", "--unhealthy-first", "--unreachable-pod-grace", "10s", "--gate-timeout", "5m")
		code := run.exitCode()
		out := run.out.String()
		took := time.Since(began)
		if code != 0 {
			t.Fatalf("roll exited %d after %s:\n%s", code, took.Round(time.Second), out)
		}
		t.Logf("roll of 3 green nodes, the dead one first, took %s:\n%s", took.Round(time.Second), out)
		lines := strings.Split(out, "\n")
		first := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "cordoned") })
		if first < 0 || !strings.Contains(lines[first], dead) {
			t.Errorf("the first node cordoned is not the dead %s", dead)
		}
		if !strings.Contains(out, "counted as gone: evicted, its deletion deadline passed") {
			t.Error("the roll did not let the dead node's Terminating pods go")
		}
		now := h.names(ctx, "nodes-green")
		for _, n := range old {
			if slices.Contains(now, n) {
				t.Errorf("old node %s still there", n)
			}
		}
		h.waitReady(ctx, t, w)
	})

	t.Run("a canary soak stops the roll when a fault fires", func(t *testing.T) {
		e.t = t
		old := h.names(ctx, "nodes-green")
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-green", "--canary", "1", "--canary-soak", "90s", "--gate-timeout", "5m")
		err := testbed.WaitFor(ctx, 5*time.Minute, "the canary soak under way", func(ctx context.Context) (bool, error) {
			select {
			case <-run.done:
				return false, errors.New("the roll ended")
			default:
			}
			return strings.Contains(run.out.String(), "canary soak: holding"), errors.New("not yet")
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, run.tail())
		}
		soakBegan := time.Now()
		time.Sleep(2 * gateInterval)
		h.fault.Store(1)
		faulted := time.Now()
		code := run.exitCode()
		stopped := time.Now()
		h.fault.Store(0)
		out := run.out.String()
		if code != 3 || !strings.Contains(out, "canary soak failed after") || !strings.Contains(out, "RollTestFault") {
			t.Fatalf("exit %d, want 3 with the fault's alert named:\n%s", code, out)
		}
		t.Logf("fault set %s into the soak; the roll stopped %s after it (Prometheus evaluation, Thanos, the gate's interval %s):\n%s",
			faulted.Sub(soakBegan).Round(100*time.Millisecond), stopped.Sub(faulted).Round(100*time.Millisecond), gateInterval, out)
		now := h.names(ctx, "nodes-green")
		replaced := 0
		for _, n := range old {
			if !slices.Contains(now, n) {
				replaced++
			}
		}
		if replaced != 1 {
			t.Errorf("%d old nodes replaced, want the canary only", replaced)
		}
		for _, n := range now {
			if nd, ok := e.groupNodes(ctx, "nodes-green")[n]; ok && nd.Spec.Unschedulable {
				t.Errorf("%s cordoned after the soak failed", n)
			}
		}
		// The alert resolves; the re-run holds the soak again, in full, and
		// completes.
		err = testbed.WaitFor(ctx, 2*time.Minute, "RollTestFault resolved", func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, `ALERTS{alertname="RollTestFault",alertstate="firing"}`, true)
			return err == nil && len(r) == 0, err
		})
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		run = e.start(ctx, e.policy, "--nodegroup", "nodes-green", "--gate-timeout", "5m")
		if code := run.exitCode(); code != 0 {
			t.Fatalf("re-run exited %d:\n%s", code, run.out.String())
		}
		out = run.out.String()
		if !strings.Contains(out, "resuming roll") || !strings.Contains(out, "canary soak passed: ") {
			t.Errorf("the re-run did not resume with the soak:\n%s", out)
		}
		t.Logf("re-run (soak held again, then 2 nodes) took %s:\n%s", time.Since(began).Round(time.Second), out)
	})

	t.Run("a surge roll that unbalances the zones: AZRebalance held", func(t *testing.T) {
		e.t = t
		if _, err := h.acct.AddASG(awsfake.ASGSpec{Name: "nodes-zoned", LaunchTemplate: h.lt, Min: 1, Max: 5, Desired: 4, Subnets: h.subnets, Tags: h.tags}); err != nil {
			t.Fatal(err)
		}
		one := intstr.FromInt32(1)
		w := testbed.Workload{Namespace: "zoned", Name: "web", Replicas: 4, MaxUnavailable: &one,
			NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: "nodes-zoned"}}
		if err := tb.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
		h.waitReady(ctx, t, w)
		err := testbed.WaitFor(ctx, 2*time.Minute, "the zoned nodes' drain series in Thanos", func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, `upgradeguard_node_drainable{node=~"ip-10-1-.*"}`, true)
			if err != nil {
				return false, err
			}
			seen := 0
			for name := range e.groupNodes(ctx, "nodes-zoned") {
				for _, s := range r {
					if s.Metric["node"] == name {
						seen++
					}
				}
			}
			return seen == 4, fmt.Errorf("%d of 4", seen)
		})
		if err != nil {
			t.Fatal(err)
		}
		oldIDs := map[string]bool{}
		g, _ := h.acct.ASG("nodes-zoned")
		for _, id := range g.Instances {
			oldIDs[id] = true
		}
		// Sample the zones while the roll runs.
		var mu sync.Mutex
		worst := 0
		sctx, stop := context.WithCancel(ctx)
		var sampling sync.WaitGroup
		sampling.Go(func() {
			for sctx.Err() == nil {
				g, _ := h.acct.ASG("nodes-zoned")
				per := map[string]int{}
				for _, id := range g.Instances {
					if i, _ := h.acct.Instance(id); i.State == "running" || i.State == "pending" {
						per[i.AZ]++
					}
				}
				d := per["eu-west-1a"] - per["eu-west-1b"]
				mu.Lock()
				worst = max(worst, d, -d)
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
		})
		began := time.Now()
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-zoned", "--surge", "--order", "name", "--gate-timeout", "5m")
		code := run.exitCode()
		stop()
		sampling.Wait()
		out := run.out.String()
		if code != 0 {
			t.Fatalf("roll exited %d:\n%s", code, out)
		}
		t.Logf("surge roll of 4 nodes over 2 zones took %s; the zones were %d apart at worst during it:\n%s", time.Since(began).Round(time.Second), worst, out)
		rebalanced := 0
		for _, x := range h.acct.ScalingActivities("nodes-zoned") {
			if strings.Contains(x.Cause, "rebalancing") {
				rebalanced++
				t.Errorf("AZRebalance terminated %s during the roll", x.Instance)
			}
		}
		terminated := 0
		for _, x := range h.acct.ScalingActivities("nodes-zoned") {
			if strings.HasPrefix(x.Description, "Terminating EC2 instance: ") {
				terminated++
				if !oldIDs[x.Instance] || !strings.Contains(x.Cause, "user request") {
					t.Errorf("terminated %s (%s), not an old instance by the roll", x.Instance, x.Cause)
				}
			}
		}
		if terminated != 4 {
			t.Errorf("%d terminations, want the 4 old instances", terminated)
		}
		g, _ = h.acct.ASG("nodes-zoned")
		if strings.Contains(out, "is unbalanced between its zones") {
			if !slices.Equal(g.SuspendedProcesses, []string{"AZRebalance"}) {
				t.Errorf("unbalanced at the end: suspended %v, want AZRebalance kept", g.SuspendedProcesses)
			}
			t.Logf("the group ended unbalanced: AZRebalance stays suspended (the roll said so)")
		} else if len(g.SuspendedProcesses) != 0 {
			t.Errorf("balanced at the end: suspended %v, want none", g.SuspendedProcesses)
		}
		if worst < 2 {
			t.Logf("the zones never got 2 apart in this run: AZRebalance would not have acted")
		}
		h.waitReady(ctx, t, w)
	})

	t.Run("a launch that fails stops the roll at once, the old node in service", func(t *testing.T) {
		e.t = t
		target := h.names(ctx, "nodes-zoned")[0]
		if err := h.acct.FailLaunches(awsfake.LaunchFault{Group: "nodes-zoned", Code: awsfake.InsufficientInstanceCapacity}); err != nil {
			t.Fatal(err)
		}
		terminations := e.aws.Calls("TerminateInstanceInAutoScalingGroup")
		sel := corev1.LabelHostname + "=" + target
		began := time.Now()
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-zoned", "--selector", sel, "--surge", "--gate-timeout", "5m")
		code := run.exitCode()
		took := time.Since(began)
		out := run.out.String()
		if code != 5 || !strings.Contains(out, "We currently do not have sufficient m5.large capacity in the Availability Zone you requested") {
			t.Fatalf("exit %d after %s, want 5 with EC2's message:\n%s", code, took.Round(time.Second), out)
		}
		t.Logf("the roll stopped %s after its start (--node-timeout 3m):\n%s", took.Round(100*time.Millisecond), out)
		if e.aws.Calls("TerminateInstanceInAutoScalingGroup") != terminations {
			t.Error("an instance was terminated")
		}
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, target, metav1.GetOptions{})
		if err != nil || n.Spec.Unschedulable {
			t.Errorf("old node %s: %v, unschedulable=%v; want it in service", target, err, n != nil && n.Spec.Unschedulable)
		}
		// Capacity comes back: the group launches the surge instance, and
		// the re-run goes on with it.
		h.acct.ClearLaunchFaults()
		run = e.start(ctx, e.policy, "--nodegroup", "nodes-zoned", "--selector", sel, "--surge", "--gate-timeout", "5m")
		if code := run.exitCode(); code != 0 {
			t.Fatalf("re-run exited %d:\n%s", code, run.out.String())
		}
		out = run.out.String()
		if !strings.Contains(out, "waiting for the instance group nodes-zoned launches for the surge asked at") {
			t.Errorf("the re-run did not wait for the first surge:\n%s", out)
		}
		t.Logf("re-run:\n%s", out)
		if g, _ := h.acct.ASG("nodes-zoned"); g.Desired != 4 {
			t.Errorf("desired capacity %d after the re-run, want 4", g.Desired)
		}
		for _, x := range h.acct.ScalingActivities("nodes-zoned") {
			if x.StatusCode == "Failed" {
				t.Logf("failed activity recorded: %s", x.StatusMessage)
				break
			}
		}
	})
}
