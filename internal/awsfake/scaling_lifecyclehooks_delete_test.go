package awsfake

import (
	"testing"

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
