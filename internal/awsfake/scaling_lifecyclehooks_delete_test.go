package awsfake

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// DeleteLifecycleHook completes the hook's outstanding actions with
// CONTINUE for terminating instances, whatever the hook's default result
// (API reference, DeleteLifecycleHook: "If there are any outstanding
// lifecycle actions, they are completed first (ABANDON for launching
// instances, CONTINUE for terminating instances)"): an instance that also
// waits for another hook keeps waiting for it. An ABANDON would skip the
// other hook (a drain it was running) and terminate the instance at once.
func TestDeleteLifecycleHookCompletesTerminationsWithContinue(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	putHook(t, c, "abandoning", 7200, ResultAbandon)
	putHook(t, c, "drainer", 7200, ResultContinue)
	victim := cl.asg.Instances[0]
	must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	must[*autoscaling.DeleteLifecycleHookOutput](t)(c.asg.DeleteLifecycleHook(ctx, &autoscaling.DeleteLifecycleHookInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("abandoning")}))
	if s, _ := stateOf(t, c, victim); s != astypes.LifecycleStateTerminatingWait {
		t.Fatalf("after deleting one of its two hooks: %s (EC2 %s), want Terminating:Wait for the other", s, ec2State(t, c, victim))
	}
	must[*autoscaling.CompleteLifecycleActionOutput](t)(c.asg.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("drainer"),
		InstanceId: aws.String(victim), LifecycleActionResult: aws.String(ResultContinue),
	}))
	if s := ec2State(t, c, victim); s != "terminated" && s != "shutting-down" {
		t.Errorf("after the other hook's CONTINUE: %s", s)
	}
}

// Each hook's action is its own: a heartbeat names one hook
// (RecordLifecycleActionHeartbeat's LifecycleHookName) and restarts that
// hook's heartbeat timeout only. The hold's heartbeats on its hook must not
// keep alive another hook (a termination handler's) that nobody heartbeats:
// that one times out on its own, here with ABANDON, which ends the wait.
func TestLifecycleHeartbeatExtendsOnlyItsHook(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	a.SetLifecycleHookSecond(5 * time.Millisecond) // 30 s last 150 ms
	cl := buildCluster(t, a)
	putHook(t, c, "upgradeguard-hold", 60, ResultContinue)
	putHook(t, c, "other", 30, ResultAbandon)
	victim := cl.asg.Instances[0]
	must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	for range 8 { // 400 ms: past "other"'s 150 ms
		time.Sleep(50 * time.Millisecond)
		_, _ = c.asg.RecordLifecycleActionHeartbeat(ctx, &autoscaling.RecordLifecycleActionHeartbeatInput{
			AutoScalingGroupName: aws.String("demo-nodes"), LifecycleHookName: aws.String("upgradeguard-hold"), InstanceId: aws.String(victim),
		})
	}
	if s := ec2State(t, c, victim); s == "running" {
		t.Fatalf("hook other (30 s, never heartbeaten) kept waiting by heartbeats on upgradeguard-hold: %+v", a.LifecycleActions("demo-nodes"))
	}
	ends := a.LifecycleEnds()
	if len(ends) != 1 || ends[0].How != "heartbeat timeout" || ends[0].Result != ResultAbandon {
		t.Errorf("ends: %+v", ends)
	}
}
