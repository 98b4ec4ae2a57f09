package roll

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// A surge roll of four nodes over two zones: each surge and decrement can
// leave the zones 3:1, and AWS's AZRebalance then terminates the oldest
// node of the fuller zone, which nobody drained. The roll suspends
// AZRebalance (and the other processes that act behind its back) while it
// runs, records that on the group, and resumes them at the end: every
// instance that ends is one the roll terminated after its drain.
func TestRunSurgeHoldsAZRebalance(t *testing.T) {
	c := newCluster(t)
	c.addZonedGroup("nodes", 4, "eu-west-1a", "eu-west-1b")
	c.addGroup("spare", 1, nil)
	for _, name := range c.groupNodes("nodes") {
		c.addPod(pod{ns: "shop", name: "web-" + name, node: name, owner: "web"})
	}
	// Processes an operator suspended before the roll stay suspended.
	if err := c.acct.SuspendProcesses("nodes", "ScheduledActions"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ended []string
	c.acct.OnTerminate(func(inst awsfake.Instance) {
		mu.Lock()
		ended = append(ended, inst.ID)
		mu.Unlock()
		_ = c.client.CoreV1().Nodes().Delete(context.Background(), nodeName(inst), metav1.DeleteOptions{})
	})
	var out bytes.Buffer
	cfg := c.rollConfig(&script{}, &out)
	cfg.Surge = true
	cfg.Selection.Order = OrderName
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, x := range c.acct.ScalingActivities("nodes") {
		if strings.Contains(x.Cause, "rebalancing") || strings.Contains(x.Cause, "balancing the group's zones") {
			t.Errorf("AZRebalance acted during the roll: %s: %s", x.Description, x.Cause)
		}
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 4 || len(ended) != 4 {
		t.Errorf("%d instances ended, %d terminated by the roll; want the 4 old ones, each by the roll", len(ended), n)
	}
	// What the roll suspended is resumed, except AZRebalance when the
	// surges left the zones 3:1: resuming it then would terminate an
	// undrained node. What was suspended before stays.
	g, _ := c.acct.ASG("nodes")
	zones := map[string]int{}
	for _, id := range g.Instances {
		if i, _ := c.acct.Instance(id); i.State == "running" {
			zones[i.AZ]++
		}
	}
	if zones["eu-west-1a"] == 2 {
		if !slices.Equal(g.SuspendedProcesses, []string{"ScheduledActions"}) || g.Tags[TagSuspended] != "" {
			t.Errorf("balanced group after the roll: suspended %v, record %q; want only what was suspended before it", g.SuspendedProcesses, g.Tags[TagSuspended])
		}
	} else {
		if !slices.Equal(g.SuspendedProcesses, []string{"AZRebalance", "ScheduledActions"}) || g.Tags[TagSuspended] != "AZRebalance" ||
			!strings.Contains(out.String(), "group nodes is unbalanced between its zones (eu-west-1a: 3, eu-west-1b: 1): AZRebalance stays suspended") {
			t.Errorf("unbalanced group (%v) after the roll: suspended %v, record %q; want AZRebalance kept and said so", zones, g.SuspendedProcesses, g.Tags[TagSuspended])
		}
		cfg.Reset = true
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		if g, _ := c.acct.ASG("nodes"); !slices.Equal(g.SuspendedProcesses, []string{"ScheduledActions"}) {
			t.Errorf("after --reset: suspended %v", g.SuspendedProcesses)
		}
	}
	if !strings.Contains(out.String(), "group nodes: AZRebalance, AlarmNotification, InstanceRefresh suspended for the roll") ||
		!strings.Contains(out.String(), "AlarmNotification, InstanceRefresh resumed") {
		t.Errorf("the roll does not say what it suspended and resumed:\n%s", out.String())
	}
	t.Logf("roll output:\n%s", out.String())
}

// An interrupted roll keeps the processes suspended and its record on the
// group; the next run (or --reset) resumes exactly those.
func TestProcessesRecordSurvivesInterruption(t *testing.T) {
	c := rollCluster(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	c.refuse["shop/web-"+c.groupNodes("nodes")[0]] = refusal429{n: 1 << 30, pdb: "web"}
	d := fastDrain()
	d.Timeout = time.Minute
	var out bytes.Buffer
	cfg := c.rollConfig(&script{}, &out)
	cfg.Drain = d
	go func() {
		for ctx.Err() == nil {
			if g, _ := c.acct.ASG("nodes"); len(g.SuspendedProcesses) > 0 {
				time.Sleep(100 * time.Millisecond)
				cancel()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := Run(ctx, cfg)
	var ie *InterruptedError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want an interruption", err)
	}
	g, _ := c.acct.ASG("nodes")
	if len(g.SuspendedProcesses) != 4 || g.Tags[TagSuspended] != "AZRebalance,AlarmNotification,InstanceRefresh,ScheduledActions" {
		t.Errorf("after the interruption: suspended %v, record %q", g.SuspendedProcesses, g.Tags[TagSuspended])
	}
	cfg.Reset = true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if g, _ := c.acct.ASG("nodes"); len(g.SuspendedProcesses) != 0 || g.Tags[TagSuspended] != "" {
		t.Errorf("after --reset: suspended %v, record %q", g.SuspendedProcesses, g.Tags[TagSuspended])
	}
}

// A launch that fails stops the roll at once with EC2's message. With
// --surge nothing was drained: the old node is uncordoned, in service, and
// a re-run waits for the same surge instead of asking again; without it the
// old instance is terminated and the group is a node short.
func TestRunStopsAtFailedLaunch(t *testing.T) {
	for _, surge := range []bool{true, false} {
		c := rollCluster(t, 2)
		old := c.groupNodes("nodes")
		if err := c.acct.FailLaunches(awsfake.LaunchFault{Group: "nodes", Code: awsfake.InsufficientInstanceCapacity}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cfg := c.rollConfig(&script{}, &out)
		cfg.Surge = surge
		cfg.NodeTimeout = time.Minute
		began := time.Now()
		_, err := Run(context.Background(), cfg)
		took := time.Since(began)
		var le *LaunchError
		if !errors.As(err, &le) || le.ExitCode() != 5 || le.Surge != surge ||
			!strings.Contains(err.Error(), "We currently do not have sufficient m5.large capacity in the Availability Zone you requested (eu-west-1a).") {
			t.Fatalf("surge %v: got %v, want a LaunchError with EC2's message\n%s", surge, err, out.String())
		}
		if took > 10*time.Second {
			t.Errorf("surge %v: the roll stopped after %s, not at once (node timeout 1m)", surge, took)
		}
		t.Logf("surge %v: stopped %s after the start: %v", surge, took.Round(time.Millisecond), err)
		if surge {
			first := c.node(old[0])
			st, _ := readState(first)
			if first.Spec.Unschedulable || st.Step != StepPending || st.SurgeRequested.IsZero() {
				t.Errorf("surge: old node unschedulable=%v, state %+v; want uncordoned, pending, the surge recorded", first.Spec.Unschedulable, st)
			}
			if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 0 {
				t.Errorf("surge: %d terminations", n)
			}
			// Capacity comes back: the re-run waits for that same launch
			// (no second surge) and completes.
			c.acct.ClearLaunchFaults()
			surges := c.srv.Calls("SetDesiredCapacity")
			out.Reset()
			if _, err := Run(context.Background(), cfg); err != nil {
				t.Fatalf("re-run: %v\n%s", err, out.String())
			}
			if n := c.srv.Calls("SetDesiredCapacity") - surges; n != 1 {
				t.Errorf("re-run: %d surges, want 1 (for the second node only)", n)
			}
			if g, _ := c.acct.ASG("nodes"); g.Desired != 2 {
				t.Errorf("re-run: desired %d, want 2", g.Desired)
			}
			continue
		}
		if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
			t.Errorf("no surge: %d terminations, want the first node's", n)
		}
	}
}

// A roll is done only when every group has as many Ready nodes as its
// desired capacity.
func TestRunGroupShort(t *testing.T) {
	c := rollCluster(t, 3)
	names := c.groupNodes("nodes")
	// One member's node is gone from the cluster (a kubelet that never
	// joined): the roll replaces the two others, then says the group is
	// short.
	if err := c.client.CoreV1().Nodes().Delete(context.Background(), names[2], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg := c.rollConfig(&script{}, &out)
	cfg.NodeTimeout = 200 * time.Millisecond
	_, err := Run(context.Background(), cfg)
	var se *ShortError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "group nodes is 1 node(s) short: desired capacity 3, 2 Ready node(s)") {
		t.Fatalf("got %v, want the group 1 node short\n%s", err, out.String())
	}
}

// A roll of one node picked by a label selector: its replacement does not
// carry the label, yet it is the node the roll waits for (found by its
// instance among the node group's nodes), with and without --surge.
func TestRunSelectedNodeReplacement(t *testing.T) {
	for _, surge := range []bool{false, true} {
		c := rollCluster(t, 2)
		target := c.groupNodes("nodes")[0]
		n := c.node(target)
		n.Labels["pick"] = "me"
		if _, err := c.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cfg := c.rollConfig(&script{}, &out)
		cfg.Surge = surge
		cfg.Selection.Selector = "pick=me"
		cfg.NodeTimeout = 2 * time.Second
		res, err := Run(context.Background(), cfg)
		if err != nil || len(res.Nodes) != 1 || res.Nodes[0].Replacement == "" {
			t.Errorf("surge %v: %v, %+v\n%s", surge, err, res, out.String())
		}
	}
}
