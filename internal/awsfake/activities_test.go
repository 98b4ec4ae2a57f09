package awsfake

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// twoZoneGroup is a group of four instances over two zones (two each).
func twoZoneGroup(t *testing.T, a *Account) ASG {
	t.Helper()
	var subnets []string
	for i, az := range []string{"a", "b"} {
		s := must[Subnet](t)(a.AddSubnet(SubnetSpec{CIDR: "10.0." + string(rune('1'+i)) + ".0/24", AZ: region + az}))
		subnets = append(subnets, s.ID)
	}
	must[LaunchTemplate](t)(a.AddLaunchTemplate("nodes", LaunchTemplateData{InstanceType: "m5.large"}, nil))
	return must[ASG](t)(a.AddASG(ASGSpec{Name: "nodes", LaunchTemplate: "nodes", Min: 1, Max: 6, Desired: 4, Subnets: subnets}))
}

func perZone(t *testing.T, a *Account, group string) map[string]int {
	t.Helper()
	g, _ := a.ASG(group)
	out := map[string]int{}
	for _, id := range g.Instances {
		if i, _ := a.Instance(id); i.State == "running" || i.State == "pending" {
			out[i.AZ]++
		}
	}
	return out
}

// AZRebalance: a terminate with decrement that leaves the zones 3:1 makes
// the group launch in the emptier zone and terminate the oldest instance
// of the fuller one, whatever runs there; suspended, nothing happens until
// it is resumed.
func TestAZRebalance(t *testing.T) {
	for _, suspended := range []bool{false, true} {
		srv, c := start(t)
		a := srv.Account()
		g := twoZoneGroup(t, a)
		if suspended {
			must[*autoscaling.SuspendProcessesOutput](t)(c.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{
				AutoScalingGroupName: aws.String("nodes"), ScalingProcesses: []string{"AZRebalance"},
			}))
		}
		must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("nodes"), DesiredCapacity: aws.Int32(5)}))
		zones := perZone(t, a, "nodes")
		// Terminate, with decrement, an instance of the zone that did not get
		// the fifth one: 3:1.
		var fuller, emptier string
		for z, n := range zones {
			if n == 3 {
				fuller = z
			} else {
				emptier = z
			}
		}
		var victim, oldestFuller string
		for _, id := range g.Instances {
			i, _ := a.Instance(id)
			if i.AZ == emptier && victim == "" {
				victim = id
			}
			if i.AZ == fuller && oldestFuller == "" {
				oldestFuller = id
			}
		}
		must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
			InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(true),
		}))
		got := perZone(t, a, "nodes")
		old, _ := a.Instance(oldestFuller)
		if suspended {
			if got[fuller] != 3 || got[emptier] != 1 || old.State != "running" {
				t.Errorf("AZRebalance suspended: zones %v, oldest of %s %s; want 3:1, untouched", got, fuller, old.State)
			}
			out := group(t, c.asg, "nodes")
			if len(out.SuspendedProcesses) != 1 || aws.ToString(out.SuspendedProcesses[0].ProcessName) != "AZRebalance" ||
				!strings.HasPrefix(aws.ToString(out.SuspendedProcesses[0].SuspensionReason), "User suspended at ") {
				t.Errorf("suspended processes: %+v", out.SuspendedProcesses)
			}
			must[*autoscaling.ResumeProcessesOutput](t)(c.asg.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String("nodes")}))
			got = perZone(t, a, "nodes")
			old, _ = a.Instance(oldestFuller)
		}
		if got[fuller] != 2 || got[emptier] != 2 || old.State != "terminated" {
			t.Errorf("suspended %v, after rebalancing: zones %v, oldest of %s %s; want 2:2, terminated", suspended, got, fuller, old.State)
		}
		acts := a.ScalingActivities("nodes")
		if !strings.Contains(acts[0].Cause, "rebalancing") || acts[0].Instance != oldestFuller ||
			!strings.Contains(acts[1].Cause, "balancing the group's zones") {
			t.Errorf("suspended %v: newest activities %+v, %+v", suspended, acts[0], acts[1])
		}
		if len(group(t, c.asg, "nodes").SuspendedProcesses) != 0 {
			t.Error("processes still suspended after ResumeProcesses")
		}
	}
}

func TestSuspendProcessesLaunchAndErrors(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	twoZoneGroup(t, a)
	must[*autoscaling.SuspendProcessesOutput](t)(c.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{
		AutoScalingGroupName: aws.String("nodes"), ScalingProcesses: []string{"Launch"},
	}))
	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("nodes"), DesiredCapacity: aws.Int32(5)}))
	if g, _ := a.ASG("nodes"); len(g.Instances) != 4 {
		t.Errorf("%d instances with Launch suspended, want 4", len(g.Instances))
	}
	must[*autoscaling.ResumeProcessesOutput](t)(c.asg.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{
		AutoScalingGroupName: aws.String("nodes"), ScalingProcesses: []string{"Launch"},
	}))
	if g, _ := a.ASG("nodes"); len(g.Instances) != 5 {
		t.Errorf("%d instances after Launch resumed, want 5", len(g.Instances))
	}
	_, err := c.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("nodes"), ScalingProcesses: []string{"Nap"}})
	if apiCode(err) != "ValidationError" {
		t.Errorf("unknown process: %v", err)
	}
	_, err = c.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("nope")})
	if apiCode(err) != "ValidationError" {
		t.Errorf("unknown group: %v", err)
	}
	// All of them when none is named.
	must[*autoscaling.SuspendProcessesOutput](t)(c.asg.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String("nodes")}))
	if n := len(group(t, c.asg, "nodes").SuspendedProcesses); n != len(ScalingProcesses) {
		t.Errorf("%d suspended, want all %d", n, len(ScalingProcesses))
	}
}

// Failed launches are Failed activities with EC2's message: capacity
// missing in one zone sends the launch to the other; in every zone, or a
// vCPU limit, or full subnets, it fails; the group launches once the fault
// is gone.
func TestFailedLaunchActivities(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	twoZoneGroup(t, a)
	must[struct{}](t)(struct{}{}, a.FailLaunches(LaunchFault{AZ: region + "a", Code: InsufficientInstanceCapacity}))
	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("nodes"), DesiredCapacity: aws.Int32(6)}))
	if z := perZone(t, a, "nodes"); z[region+"b"] != 4 || z[region+"a"] != 2 {
		t.Errorf("zones %v: want both launches in %sb", z, region)
	}
	must[struct{}](t)(struct{}{}, a.FailLaunches(LaunchFault{Group: "nodes", AZ: region + "b", Code: InsufficientInstanceCapacity}))
	g, _ := a.ASG("nodes")
	must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(g.Instances[0]), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	out := must[*autoscaling.DescribeScalingActivitiesOutput](t)(c.asg.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("nodes")}))
	last := out.Activities[0]
	if last.StatusCode != astypes.ScalingActivityStatusCodeFailed ||
		!strings.HasPrefix(aws.ToString(last.StatusMessage), "We currently do not have sufficient m5.large capacity in the Availability Zone you requested (us-east-1") ||
		!strings.HasSuffix(aws.ToString(last.StatusMessage), "Launching EC2 instance failed.") ||
		!strings.Contains(aws.ToString(last.Cause), "increasing the capacity from 5 to 6") {
		t.Errorf("failed launch activity: %s %q %q", last.StatusCode, aws.ToString(last.StatusMessage), aws.ToString(last.Cause))
	}
	// Before the failures (the group retries at each change): the
	// termination, done.
	i := slices.IndexFunc(out.Activities, func(x astypes.Activity) bool { return x.StatusCode != astypes.ScalingActivityStatusCodeFailed })
	if x := out.Activities[i]; x.StatusCode != astypes.ScalingActivityStatusCodeSuccessful || aws.ToString(x.Description) != "Terminating EC2 instance: "+g.Instances[0] {
		t.Errorf("activity before the failures: %s %q", x.StatusCode, aws.ToString(x.Description))
	}
	a.ClearLaunchFaults()
	if g, _ := a.ASG("nodes"); len(g.Instances) != 6 {
		t.Errorf("%d instances after the faults cleared, want 6", len(g.Instances))
	}

	must[struct{}](t)(struct{}{}, a.FailLaunches(LaunchFault{Code: VcpuLimitExceeded}))
	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("nodes"), DesiredCapacity: aws.Int32(5)}))
	g, _ = a.ASG("nodes")
	must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(g.Instances[0]), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	if x := a.ScalingActivities("nodes")[0]; x.StatusCode != "Failed" || !strings.Contains(x.StatusMessage, "more vCPU capacity than your current vCPU limit") {
		t.Errorf("vCPU limit: %+v", x)
	}
	if err := a.FailLaunches(LaunchFault{Code: "Gremlins"}); err == nil {
		t.Error("an unknown fault code is accepted")
	}

	// Paging, newest first.
	all := a.ScalingActivities("nodes")
	var paged []string
	p := autoscaling.NewDescribeScalingActivitiesPaginator(c.asg, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String("nodes"), MaxRecords: aws.Int32(3)})
	for p.HasMorePages() {
		page := must[*autoscaling.DescribeScalingActivitiesOutput](t)(p.NextPage(ctx))
		for _, x := range page.Activities {
			paged = append(paged, aws.ToString(x.ActivityId))
		}
	}
	var want []string
	for _, x := range all {
		want = append(want, x.ID)
	}
	if !slices.Equal(paged, want) || len(want) < 10 {
		t.Errorf("paged %d activities, want the %d of ScalingActivities in its order", len(paged), len(want))
	}
}

func TestFullSubnetFailsLaunch(t *testing.T) {
	srv, _ := start(t)
	a := srv.Account()
	s := must[Subnet](t)(a.AddSubnet(SubnetSpec{CIDR: "10.0.9.0/28", AZ: region + "a"})) // 11 usable
	must[LaunchTemplate](t)(a.AddLaunchTemplate("nodes", LaunchTemplateData{InstanceType: "m5.large"}, nil))
	must[ASG](t)(a.AddASG(ASGSpec{Name: "nodes", LaunchTemplate: "nodes", Min: 1, Max: 20, Desired: 11, Subnets: []string{s.ID}}))
	if err := a.SetDesiredCapacity("nodes", 12); err != nil {
		t.Fatal(err)
	}
	x := a.ScalingActivities("nodes")[0]
	if x.StatusCode != "Failed" || x.StatusMessage != "There are not enough free addresses in subnet '"+s.ID+"' to satisfy the requested number of instances. Launching EC2 instance failed." {
		t.Errorf("full subnet: %+v", x)
	}
}

func TestGroupTags(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	twoZoneGroup(t, a)
	must[*autoscaling.CreateOrUpdateTagsOutput](t)(c.asg.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{{
		ResourceId: aws.String("nodes"), ResourceType: aws.String("auto-scaling-group"), Key: aws.String("note"), Value: aws.String("x"), PropagateAtLaunch: aws.Bool(false),
	}}}))
	g := group(t, c.asg, "nodes")
	if len(g.Tags) != 1 || aws.ToString(g.Tags[0].Value) != "x" || aws.ToBool(g.Tags[0].PropagateAtLaunch) {
		t.Errorf("tags: %+v", g.Tags)
	}
	if err := a.SetDesiredCapacity("nodes", 5); err != nil {
		t.Fatal(err)
	}
	for _, i := range a.Instances() {
		if _, ok := i.Tags["note"]; ok {
			t.Errorf("instance %s got a tag that does not propagate", i.ID)
		}
	}
	must[*autoscaling.DeleteTagsOutput](t)(c.asg.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: []astypes.Tag{{
		ResourceId: aws.String("nodes"), ResourceType: aws.String("auto-scaling-group"), Key: aws.String("note"),
	}}}))
	if g := group(t, c.asg, "nodes"); len(g.Tags) != 0 {
		t.Errorf("tags after delete: %+v", g.Tags)
	}
}
