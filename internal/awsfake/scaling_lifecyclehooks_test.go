package awsfake

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func putHook(t *testing.T, c clients, name string, hb int32, result string) {
	t.Helper()
	must[*autoscaling.PutLifecycleHookOutput](t)(c.asg.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String(name),
		LifecycleTransition: aws.String(TransitionTerminating), HeartbeatTimeout: aws.Int32(hb), DefaultResult: aws.String(result),
	}))
}

func stateOf(t *testing.T, c clients, id string) (astypes.LifecycleState, bool) {
	t.Helper()
	for _, i := range group(t, c.asg, "demo-nodes").Instances {
		if aws.ToString(i.InstanceId) == id {
			return i.LifecycleState, true
		}
	}
	return "", false
}

func ec2State(t *testing.T, c clients, id string) string {
	t.Helper()
	out := must[*ec2.DescribeInstancesOutput](t)(c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}))
	return string(out.Reservations[0].Instances[0].State.Name)
}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(within); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %s: %s", within, what)
		}
	}
}

// Hooks through the real SDK: Put (AWS's defaults and ranges), Describe
// (GlobalTimeout), Delete; a termination waits in Terminating:Wait with its
// EC2 instance running and its activity MidLifecycleAction, the
// group launching the replacement; a heartbeat and CompleteLifecycleAction
// CONTINUE end it; a second completion finds no action.
func TestLifecycleHookTerminationWaitsForCompletion(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	_, err := c.asg.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("short"),
		LifecycleTransition: aws.String(TransitionTerminating), HeartbeatTimeout: aws.Int32(10),
	})
	if apiCode(err) != "ValidationError" {
		t.Fatalf("heartbeat timeout 10: %v, want ValidationError (30 to 7200)", err)
	}
	must[*autoscaling.PutLifecycleHookOutput](t)(c.asg.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("defaults"),
		LifecycleTransition: aws.String(TransitionTerminating),
	}))
	putHook(t, c, "upgradeguard-drain", 7200, ResultContinue)
	hooks := must[*autoscaling.DescribeLifecycleHooksOutput](t)(c.asg.DescribeLifecycleHooks(ctx, &autoscaling.DescribeLifecycleHooksInput{AutoScalingGroupName: aws.String("demo-nodes")}))
	if len(hooks.LifecycleHooks) != 2 {
		t.Fatalf("hooks: %+v", hooks.LifecycleHooks)
	}
	d, u := hooks.LifecycleHooks[0], hooks.LifecycleHooks[1]
	if aws.ToString(d.LifecycleHookName) != "defaults" || aws.ToInt32(d.HeartbeatTimeout) != 3600 || aws.ToString(d.DefaultResult) != ResultAbandon || aws.ToInt32(d.GlobalTimeout) != 172800 {
		t.Errorf("AWS's defaults: %s heartbeat %d, %s, global %d; want 3600, ABANDON, 172800 (48 h < 100 x 3600)",
			aws.ToString(d.LifecycleHookName), aws.ToInt32(d.HeartbeatTimeout), aws.ToString(d.DefaultResult), aws.ToInt32(d.GlobalTimeout))
	}
	if aws.ToInt32(u.GlobalTimeout) != 172800 || aws.ToString(u.DefaultResult) != ResultContinue {
		t.Errorf("upgradeguard-drain: %+v", u)
	}
	must[*autoscaling.DeleteLifecycleHookOutput](t)(c.asg.DeleteLifecycleHook(ctx, &autoscaling.DeleteLifecycleHookInput{AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("defaults")}))
	putHook(t, c, "upgradeguard-drain", 30, ResultContinue)
	if hs := a.LifecycleHooks("demo-nodes"); len(hs) != 1 || hs[0].GlobalTimeout() != 3000 {
		t.Fatalf("after delete and update: %+v", hs)
	}

	victim := cl.asg.Instances[0]
	must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	if s, _ := stateOf(t, c, victim); s != astypes.LifecycleStateTerminatingWait {
		t.Fatalf("victim: %s, want Terminating:Wait", s)
	}
	if s := ec2State(t, c, victim); s != "running" {
		t.Errorf("EC2 state while waiting: %s, want running", s)
	}
	if l := lifecycles(group(t, c.asg, "demo-nodes")); l[astypes.LifecycleStateInService] != 3 {
		t.Errorf("the group did not replace the waiting instance: %v", l)
	}
	acts := must[*autoscaling.DescribeScalingActivitiesOutput](t)(c.asg.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("demo-nodes")}))
	var mid bool
	for _, x := range acts.Activities {
		mid = mid || aws.ToString(x.Description) == "Terminating EC2 instance: "+victim && x.StatusCode == astypes.ScalingActivityStatusCodeMidLifecycleAction
	}
	if !mid {
		t.Errorf("no MidLifecycleAction activity for %s", victim)
	}
	_, err = c.asg.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("upgradeguard-drain"), InstanceId: aws.String(cl.asg.Instances[1]),
	})
	if apiCode(err) != "ValidationError" {
		t.Errorf("heartbeat of an instance that is not waiting: %v", err)
	}
	must[*autoscaling.RecordLifecycleActionHeartbeatOutput](t)(c.asg.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("upgradeguard-drain"), InstanceId: aws.String(victim),
	}))
	tok := a.LifecycleActions("demo-nodes")[0].Token
	must[*autoscaling.CompleteLifecycleActionOutput](t)(c.asg.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("upgradeguard-drain"),
		LifecycleActionToken: aws.String(tok), LifecycleActionResult: aws.String(ResultContinue),
	}))
	if s := ec2State(t, c, victim); s != "terminated" && s != "shutting-down" {
		t.Errorf("after CONTINUE: %s", s)
	}
	if _, in := stateOf(t, c, victim); in {
		t.Errorf("%s still a member after CONTINUE", victim)
	}
	_, err = c.asg.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("upgradeguard-drain"),
		InstanceId: aws.String(victim), LifecycleActionResult: aws.String(ResultContinue),
	})
	if apiCode(err) != "ValidationError" {
		t.Errorf("second completion: %v, want ValidationError", err)
	}
	ends := a.LifecycleEnds()
	if len(ends) != 1 || ends[0].How != "completed" || ends[0].Result != ResultContinue || ends[0].Heartbeats != 1 {
		t.Errorf("ends: %+v", ends)
	}
}

// The heartbeat timeout applies the default result (CONTINUE and ABANDON
// both terminate); heartbeats extend the wait, but not past the global
// timeout (100 x the heartbeat timeout here).
func TestLifecycleHookTimeouts(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	a.SetLifecycleHookSecond(time.Millisecond) // 30 s -> 30 ms, global 3 s
	putHook(t, c, "h", 30, ResultAbandon)
	terminateInASG(t, a, cl.asg.Instances[0])
	eventually(t, 2*time.Second, "the heartbeat timeout's ABANDON", func() bool { return ec2State(t, c, cl.asg.Instances[0]) == "terminated" })

	begin := time.Now()
	terminateInASG(t, a, cl.asg.Instances[1])
	for ec2State(t, c, cl.asg.Instances[1]) == "running" {
		if err := a.RecordLifecycleActionHeartbeat("demo-nodes", "h", cl.asg.Instances[1]); err != nil && time.Since(begin) < 2900*time.Millisecond {
			t.Fatalf("heartbeat at %s: %v", time.Since(begin), err)
		}
		if time.Since(begin) > 10*time.Second {
			t.Fatal("heartbeats kept the instance waiting past the global timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w := time.Since(begin); w < 2900*time.Millisecond {
		t.Errorf("ended after %s despite heartbeats every 10 ms (heartbeat timeout 30 ms, global 3 s)", w)
	}
	ends := a.LifecycleEnds()
	if len(ends) != 2 || ends[0].How != "heartbeat timeout" || ends[0].Result != ResultAbandon || ends[1].How != "global timeout" || ends[1].Heartbeats < 100 {
		t.Errorf("ends: %+v", ends)
	}
}

// terminateInASG is TerminateInstanceInAutoScalingGroup without decrement.
func terminateInASG(t *testing.T, a *Account, id string) {
	t.Helper()
	a.lock()
	defer a.unlock()
	if _, _, aerr := a.terminateInASG(id, false); aerr != nil {
		t.Fatal(aerr)
	}
}

// A scale-in, AZRebalance and an instance refresh all wait on the hook; a
// refresh stays InProgress until its batch's instances left
// Terminating:Wait; ABANDON skips the other hooks; EC2's own
// TerminateInstances does not go through them.
func TestLifecycleHookScaleInRebalanceRefresh(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	buildCluster(t, a)
	a.SetInstanceRefreshStep(5 * time.Millisecond)
	putHook(t, c, "a", 3600, ResultContinue)
	putHook(t, c, "b", 3600, ResultContinue)

	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("demo-nodes"), DesiredCapacity: aws.Int32(2)}))
	acts := a.LifecycleActions("demo-nodes")
	if len(acts) != 1 || len(acts[0].Hooks) != 2 {
		t.Fatalf("scale-in: %+v", acts)
	}
	scaled := acts[0].Instance
	if l := lifecycles(group(t, c.asg, "demo-nodes")); l[astypes.LifecycleStateInService] != 2 || l[astypes.LifecycleStateTerminatingWait] != 1 {
		t.Errorf("scale-in: %v", l)
	}
	if err := a.CompleteLifecycleAction("demo-nodes", "a", scaled, ResultContinue); err != nil {
		t.Fatal(err)
	}
	if ec2State(t, c, scaled) != "running" {
		t.Error("CONTINUE on one of two hooks ended the wait")
	}
	if err := a.CompleteLifecycleAction("demo-nodes", "b", scaled, ResultContinue); err != nil {
		t.Fatal(err)
	}
	if s := ec2State(t, c, scaled); s == "running" {
		t.Error("both hooks completed, still running")
	}

	// EC2's own TerminateInstances bypasses the hooks.
	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("demo-nodes"), DesiredCapacity: aws.Int32(3)}))
	live := group(t, c.asg, "demo-nodes").Instances
	if err := a.TerminateInstance(aws.ToString(live[0].InstanceId)); err != nil {
		t.Fatal(err)
	}
	if s := ec2State(t, c, aws.ToString(live[0].InstanceId)); s == "running" {
		t.Errorf("EC2 TerminateInstances waited on the hook: %s", s)
	}
	if len(a.LifecycleActions("demo-nodes")) != 0 {
		t.Errorf("EC2 TerminateInstances made a lifecycle action: %+v", a.LifecycleActions("demo-nodes"))
	}
	// AZRebalance: with no capacity in b and c, every instance ends up in
	// a; when capacity comes back the group rebalances through the hook.
	for _, z := range []string{"b", "c"} {
		if err := a.FailLaunches(LaunchFault{Code: InsufficientInstanceCapacity, AZ: region + z}); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range group(t, c.asg, "demo-nodes").Instances {
		if aws.ToString(i.AvailabilityZone) != region+"a" {
			terminateInASG(t, a, aws.ToString(i.InstanceId))
			if err := a.CompleteLifecycleAction("demo-nodes", "a", aws.ToString(i.InstanceId), ResultAbandon); err != nil {
				t.Fatal(err)
			}
		}
	}
	if l := lifecycles(group(t, c.asg, "demo-nodes")); l[astypes.LifecycleStateInService] != 3 {
		t.Fatalf("before rebalancing: %v", l)
	}
	a.ClearLaunchFaults()
	var rebalanced LifecycleAction
	eventually(t, 2*time.Second, "an AZRebalance termination waiting", func() bool {
		for _, x := range a.LifecycleActions("demo-nodes") {
			rebalanced = x
			return true
		}
		return false
	})
	for _, x := range a.ScalingActivities("demo-nodes") {
		if x.Instance == rebalanced.Instance && x.Description == "Terminating EC2 instance: "+x.Instance {
			if x.StatusCode != "MidLifecycleAction" || !contains(x.Cause, "rebalancing") {
				t.Errorf("rebalance termination: %s %q", x.StatusCode, x.Cause)
			}
		}
	}
	if err := a.CompleteLifecycleAction("demo-nodes", "b", rebalanced.Instance, ResultAbandon); err != nil {
		t.Fatal(err)
	}
	if s := ec2State(t, c, rebalanced.Instance); s == "running" {
		t.Error("ABANDON did not terminate")
	}

	// Instance refresh: it waits on each batch's instances.
	if err := a.SuspendProcesses("demo-nodes", "AZRebalance"); err != nil {
		t.Fatal(err)
	}
	id := must[*autoscaling.StartInstanceRefreshOutput](t)(c.asg.StartInstanceRefresh(ctx, &autoscaling.StartInstanceRefreshInput{AutoScalingGroupName: aws.String("demo-nodes")}))
	completed := map[string]bool{}
	for done := false; !done; {
		eventually(t, 2*time.Second, "a refresh batch waiting, or the refresh done", func() bool {
			r := a.InstanceRefreshes("demo-nodes")[0]
			done = r.Status == "Successful"
			return done || len(a.LifecycleActions("demo-nodes")) > 0
		})
		if done {
			break
		}
		x := a.LifecycleActions("demo-nodes")[0]
		time.Sleep(30 * time.Millisecond) // six refresh steps: it must not move on
		if r := a.InstanceRefreshes("demo-nodes")[0]; r.Status != "InProgress" || len(a.LifecycleActions("demo-nodes")) != 1 {
			t.Fatalf("refresh %s while %s waits: %+v, actions %+v", aws.ToString(id.InstanceRefreshId), x.Instance, r, a.LifecycleActions("demo-nodes"))
		}
		completed[x.Instance] = true
		for _, h := range x.Hooks {
			if err := a.CompleteLifecycleAction("demo-nodes", h, x.Instance, ResultContinue); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(completed) != 3 {
		t.Errorf("the refresh replaced %d instances through the hooks, want 3", len(completed))
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
