package awsfake

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// A warm pool through the real SDK: its instances are not members; a
// replacement takes a warm instance ("from warm pool"), which enters the
// group, and the pool is refilled ("into warm pool"); a refill EC2 refuses
// is a Failed activity of the pool's, while the group is at its capacity.
func TestWarmPool(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a) // Max 6, Desired 3
	must[*autoscaling.PutWarmPoolOutput](t)(c.asg.PutWarmPool(ctx, &autoscaling.PutWarmPoolInput{
		AutoScalingGroupName: aws.String("demo-nodes"), MinSize: aws.Int32(1), MaxGroupPreparedCapacity: aws.Int32(4),
		PoolState: astypes.WarmPoolStateStopped,
	}))
	wp := must[*autoscaling.DescribeWarmPoolOutput](t)(c.asg.DescribeWarmPool(ctx, &autoscaling.DescribeWarmPoolInput{AutoScalingGroupName: aws.String("demo-nodes")}))
	if wp.WarmPoolConfiguration == nil || aws.ToInt32(wp.WarmPoolConfiguration.MinSize) != 1 || wp.WarmPoolConfiguration.PoolState != astypes.WarmPoolStateStopped ||
		len(wp.Instances) != 1 || wp.Instances[0].LifecycleState != astypes.LifecycleStateWarmedStopped {
		t.Fatalf("warm pool: %+v, instances %+v", wp.WarmPoolConfiguration, wp.Instances)
	}
	warm := aws.ToString(wp.Instances[0].InstanceId)
	g := group(t, c.asg, "demo-nodes")
	if len(g.Instances) != 3 {
		t.Errorf("members: %d, want 3 (warm instances are not members)", len(g.Instances))
	}
	if err := a.FailLaunches(LaunchFault{Code: InsufficientInstanceCapacity}); err != nil {
		t.Fatal(err)
	}
	victim := cl.asg.Instances[0]
	must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	g = group(t, c.asg, "demo-nodes")
	var in bool
	for _, i := range g.Instances {
		if aws.ToString(i.InstanceId) == warm && i.LifecycleState == astypes.LifecycleStateInService {
			in = true
		}
	}
	if !in {
		t.Errorf("the warm instance %s did not enter the group: %+v", warm, lifecycles(g))
	}
	var descs []string
	var from, failedRefill, failedLaunch bool
	for _, x := range a.ScalingActivities("demo-nodes") {
		descs = append(descs, x.StatusCode+" "+x.Description)
		switch {
		case x.StatusCode == "Successful" && x.Description == "Launching a new EC2 instance from warm pool: "+warm && x.Instance == warm:
			from = true
		case x.StatusCode == "Failed" && strings.HasPrefix(x.Description, "Launching a new EC2 instance into warm pool.  Status Reason: We currently do not have sufficient m5.large capacity"):
			failedRefill = !from // newest first: after the entry
		case x.StatusCode == "Failed":
			failedLaunch = true
		}
	}
	if !from || !failedRefill || failedLaunch {
		t.Errorf("want the warm instance's entry, then a failed refill, and no other failure; activities, newest first:\n%s", strings.Join(descs, "\n"))
	}
	// Capacity back: the next change refills the pool.
	a.ClearLaunchFaults()
	if _, insts, _ := a.WarmPoolOf("demo-nodes"); len(insts) != 1 || insts[0].ID == warm {
		t.Errorf("after the fault: warm instances %+v", insts)
	}
	must[*autoscaling.DeleteWarmPoolOutput](t)(c.asg.DeleteWarmPool(ctx, &autoscaling.DeleteWarmPoolInput{AutoScalingGroupName: aws.String("demo-nodes")}))
	if _, _, ok := a.WarmPoolOf("demo-nodes"); ok {
		t.Error("the warm pool is still there")
	}
}
