package awsfake

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func listGroups(t *testing.T, c *autoscaling.Client, in *autoscaling.DescribeAutoScalingGroupsInput) ([]astypes.AutoScalingGroup, int) {
	t.Helper()
	var out []astypes.AutoScalingGroup
	pages := 0
	p := autoscaling.NewDescribeAutoScalingGroupsPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		out = append(out, page.AutoScalingGroups...)
	}
	return out, pages
}

func group(t *testing.T, c *autoscaling.Client, name string) astypes.AutoScalingGroup {
	t.Helper()
	out, err := c.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.AutoScalingGroups) != 1 {
		t.Fatalf("group %s: %d found", name, len(out.AutoScalingGroups))
	}
	return out.AutoScalingGroups[0]
}

func lifecycles(g astypes.AutoScalingGroup) map[astypes.LifecycleState]int {
	out := map[astypes.LifecycleState]int{}
	for _, i := range g.Instances {
		out[i.LifecycleState]++
	}
	return out
}

func TestDescribeAutoScalingGroups(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	must[LaunchConfiguration](t)(a.AddLaunchConfiguration(LaunchConfiguration{Name: "legacy", InstanceType: "c5.large", SpotPrice: "0.05"}))
	for i := range 6 {
		must[ASG](t)(a.AddASG(ASGSpec{
			Name: "other-" + string(rune('a'+i)), LaunchConfiguration: "legacy", Max: 2, Desired: 1,
			Subnets: []string{cl.subnets[i%3].ID}, Tags: map[string]string{"team": "other"},
		}))
	}
	all, pages := listGroups(t, c.asg, &autoscaling.DescribeAutoScalingGroupsInput{})
	if len(all) != 7 || pages != 2 {
		t.Errorf("%d groups in %d pages, want 7 in 2", len(all), pages)
	}
	mine, _ := listGroups(t, c.asg, &autoscaling.DescribeAutoScalingGroupsInput{Filters: []astypes.Filter{
		{Name: aws.String("tag-key"), Values: []string{"kubernetes.io/cluster/demo"}},
	}})
	if len(mine) != 1 {
		t.Fatalf("cluster groups by tag: %d", len(mine))
	}
	g := mine[0]
	if aws.ToString(g.AutoScalingGroupName) != "demo-nodes" || aws.ToInt32(g.DesiredCapacity) != 3 || aws.ToInt32(g.MinSize) != 1 || aws.ToInt32(g.MaxSize) != 6 ||
		len(g.AvailabilityZones) != 3 || aws.ToString(g.VPCZoneIdentifier) != cl.subnets[0].ID+","+cl.subnets[1].ID+","+cl.subnets[2].ID ||
		aws.ToString(g.LaunchTemplate.LaunchTemplateId) != cl.lt.ID || aws.ToString(g.LaunchTemplate.Version) != "$Default" {
		t.Errorf("group shape: %+v", g)
	}
	if len(g.Tags) != 1 || aws.ToString(g.Tags[0].Key) != "kubernetes.io/cluster/demo" || !aws.ToBool(g.Tags[0].PropagateAtLaunch) {
		t.Errorf("group tags: %+v", g.Tags)
	}
	zones := map[string]bool{}
	for _, i := range g.Instances {
		zones[aws.ToString(i.AvailabilityZone)] = true
		if i.LifecycleState != astypes.LifecycleStateInService || aws.ToString(i.LaunchTemplate.Version) != "1" || aws.ToString(i.InstanceType) != "m5.large" {
			t.Errorf("member: %+v", i)
		}
	}
	if len(zones) != 3 {
		t.Errorf("3 nodes spread over %d zones", len(zones))
	}
	byTag, _ := listGroups(t, c.asg, &autoscaling.DescribeAutoScalingGroupsInput{Filters: []astypes.Filter{
		{Name: aws.String("tag:team"), Values: []string{"other"}},
	}})
	if len(byTag) != 6 {
		t.Errorf("tag:team=other: %d groups", len(byTag))
	}
	none := must[*autoscaling.DescribeAutoScalingGroupsOutput](t)(c.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{"gone"}}))
	if len(none.AutoScalingGroups) != 0 {
		t.Errorf("unknown group name listed")
	}
	_, err := c.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{Filters: []astypes.Filter{{Name: aws.String("bogus"), Values: []string{"x"}}}})
	if apiCode(err) != "ValidationError" {
		t.Errorf("bogus filter: %v", err)
	}
	_, err = c.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{NextToken: aws.String("!!")})
	if apiCode(err) != "InvalidNextToken" {
		t.Errorf("bad token: %v", err)
	}

	// The launch-configuration groups launch spot instances of c5.large.
	other := group(t, c.asg, "other-a")
	inst, _ := a.Instance(aws.ToString(other.Instances[0].InstanceId))
	if inst.Lifecycle != "spot" || inst.Type != "c5.large" || aws.ToString(other.LaunchConfigurationName) != "legacy" {
		t.Errorf("launch configuration group's instance: %+v", inst)
	}

	// Account limits follow the autoscaling quotas.
	a.SetQuota("autoscaling", "L-CDE20ADC", "", 250)
	lim := must[*autoscaling.DescribeAccountLimitsOutput](t)(c.asg.DescribeAccountLimits(ctx, &autoscaling.DescribeAccountLimitsInput{}))
	if aws.ToInt32(lim.MaxNumberOfAutoScalingGroups) != 250 || aws.ToInt32(lim.NumberOfAutoScalingGroups) != 7 ||
		aws.ToInt32(lim.MaxNumberOfLaunchConfigurations) != 200 || aws.ToInt32(lim.NumberOfLaunchConfigurations) != 1 {
		t.Errorf("account limits: %+v", lim)
	}

	for i := range 6 {
		must[LaunchConfiguration](t)(a.AddLaunchConfiguration(LaunchConfiguration{
			Name: "lc-" + string(rune('a'+i)), InstanceType: "m5.large",
			BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeType: "gp2", SizeGiB: 30}},
		}))
	}
	var lcs []string
	pl := autoscaling.NewDescribeLaunchConfigurationsPaginator(c.asg, &autoscaling.DescribeLaunchConfigurationsInput{})
	for pl.HasMorePages() {
		for _, lc := range must[*autoscaling.DescribeLaunchConfigurationsOutput](t)(pl.NextPage(ctx)).LaunchConfigurations {
			lcs = append(lcs, aws.ToString(lc.LaunchConfigurationName))
			if lc.BlockDeviceMappings != nil && aws.ToString(lc.LaunchConfigurationName) == "lc-a" && aws.ToInt32(lc.BlockDeviceMappings[0].Ebs.VolumeSize) != 30 {
				t.Errorf("lc-a block devices: %+v", lc.BlockDeviceMappings)
			}
		}
	}
	if len(lcs) != 7 || !slices.IsSorted(lcs) {
		t.Errorf("launch configurations: %v", lcs)
	}
}

func TestTerminateInstanceInAutoScalingGroup(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	var mu sync.Mutex
	var launched, terminated []Instance
	a.OnLaunch(func(i Instance) { mu.Lock(); launched = append(launched, i); mu.Unlock() })
	a.OnTerminate(func(i Instance) { mu.Lock(); terminated = append(terminated, i); mu.Unlock() })
	cl := buildCluster(t, a)
	if len(launched) != 3 || launched[0].ASG != "demo-nodes" {
		t.Fatalf("OnLaunch saw %d initial instances", len(launched))
	}
	victim := cl.asg.Instances[1]
	before, _ := a.Instance(victim)

	// Without decrement: the instance terminates and a replacement of the
	// launch template joins the group in one of its subnets.
	out := must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	if out.Activity == nil || aws.ToString(out.Activity.Description) != "Terminating EC2 instance: "+victim || out.Activity.StatusCode != astypes.ScalingActivityStatusCodeInProgress {
		t.Errorf("activity: %+v", out.Activity)
	}
	g := group(t, c.asg, "demo-nodes")
	if aws.ToInt32(g.DesiredCapacity) != 3 || len(g.Instances) != 3 || slices.ContainsFunc(g.Instances, func(i astypes.Instance) bool { return aws.ToString(i.InstanceId) == victim }) {
		t.Errorf("after terminate without decrement: desired %d, members %d", aws.ToInt32(g.DesiredCapacity), len(g.Instances))
	}
	if len(launched) != 4 || len(terminated) != 1 || terminated[0].ID != victim {
		t.Fatalf("hooks: %d launched, %d terminated", len(launched), len(terminated))
	}
	repl := launched[3]
	if repl.ASG != "demo-nodes" || repl.Type != "m5.large" || repl.AZ != before.AZ || repl.LaunchTemplateVersion != "1" || len(repl.ENIs) != 1 || len(repl.Volumes) != 1 {
		t.Errorf("replacement: %+v (victim was in %s)", repl, before.AZ)
	}
	desc := must[*ec2.DescribeInstancesOutput](t)(c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{victim}}))
	if st := desc.Reservations[0].Instances[0].State.Name; st != types.InstanceStateNameTerminated {
		t.Errorf("victim state %s", st)
	}

	// With decrement: desired drops, no replacement.
	out2 := must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(repl.ID), ShouldDecrementDesiredCapacity: aws.Bool(true),
	}))
	if cause := aws.ToString(out2.Activity.Cause); !strings.Contains(cause, "shrinking the capacity from 3 to 2") {
		t.Errorf("cause: %q", cause)
	}
	g = group(t, c.asg, "demo-nodes")
	if aws.ToInt32(g.DesiredCapacity) != 2 || len(g.Instances) != 2 || len(launched) != 4 {
		t.Errorf("after decrement: desired %d, members %d, launched %d", aws.ToInt32(g.DesiredCapacity), len(g.Instances), len(launched))
	}

	// Errors as AWS words them.
	_, err := c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String("i-0000000000000dead"), ShouldDecrementDesiredCapacity: aws.Bool(true),
	})
	if apiCode(err) != "ValidationError" {
		t.Errorf("unknown instance: %v", err)
	}
	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("demo-nodes"), DesiredCapacity: aws.Int32(1)}))
	g = group(t, c.asg, "demo-nodes")
	_, err = c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: g.Instances[0].InstanceId, ShouldDecrementDesiredCapacity: aws.Bool(true),
	})
	if apiCode(err) != "ValidationError" || !strings.Contains(err.Error(), "min size") {
		t.Errorf("below min: %v", err)
	}
}

func TestSetDesiredCapacity(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("demo-nodes"), DesiredCapacity: aws.Int32(6)}))
	g := group(t, c.asg, "demo-nodes")
	perAZ := map[string]int{}
	for _, i := range g.Instances {
		perAZ[aws.ToString(i.AvailabilityZone)]++
	}
	if len(g.Instances) != 6 || perAZ[region+"a"] != 2 || perAZ[region+"b"] != 2 || perAZ[region+"c"] != 2 {
		t.Errorf("scale to 6: %v", perAZ)
	}
	must[*autoscaling.SetDesiredCapacityOutput](t)(c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("demo-nodes"), DesiredCapacity: aws.Int32(2)}))
	g = group(t, c.asg, "demo-nodes")
	if len(g.Instances) != 2 {
		t.Errorf("scale to 2: %d members", len(g.Instances))
	}
	// The oldest ones went first, from the most populated zones.
	for _, id := range cl.asg.Instances {
		if i, _ := a.Instance(id); i.State != "terminated" {
			t.Errorf("original %s is %s after scale-in", id, i.State)
		}
	}
	_, err := c.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: aws.String("demo-nodes"), DesiredCapacity: aws.Int32(7)})
	if apiCode(err) != "ValidationError" {
		t.Errorf("above max: %v", err)
	}
	// Scaling in freed the subnets' addresses and deleted the volumes.
	var used int
	for _, s := range a.Subnets() {
		used += s.UsableIPs - s.AvailableIPs
	}
	if used != 2 || len(a.Volumes()) != 2 {
		t.Errorf("after scale-in: %d addresses used, %d volumes", used, len(a.Volumes()))
	}
}

// TestLifecycleTiming uses real delays: the shutting-down and pending states
// are visible through the API, and the replacement arrives after LaunchDelay.
func TestLifecycleTiming(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	a.SetTiming(Timing{LaunchDelay: 60 * time.Millisecond, PendingDuration: 60 * time.Millisecond, ShutdownDuration: 60 * time.Millisecond})
	launched := make(chan Instance, 1)
	a.OnLaunch(func(i Instance) { launched <- i })
	victim := cl.asg.Instances[0]
	must[*autoscaling.TerminateInstanceInAutoScalingGroupOutput](t)(c.asg.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId: aws.String(victim), ShouldDecrementDesiredCapacity: aws.Bool(false),
	}))
	if lc := lifecycles(group(t, c.asg, "demo-nodes")); lc[astypes.LifecycleStateTerminating] != 1 || lc[astypes.LifecycleStateInService] != 2 {
		t.Errorf("right after terminate: %v", lc)
	}
	if i, _ := a.Instance(victim); i.State != "shutting-down" {
		t.Errorf("victim %s", i.State)
	}
	var repl Instance
	select {
	case repl = <-launched:
	case <-time.After(2 * time.Second):
		t.Fatal("no replacement launched")
	}
	if repl.State != "pending" {
		t.Errorf("replacement launched %s", repl.State)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		lc := lifecycles(group(t, c.asg, "demo-nodes"))
		if lc[astypes.LifecycleStateInService] == 3 && len(lc) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group never settled: %v", lc)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if i, _ := a.Instance(victim); i.State != "terminated" {
		t.Errorf("victim %s", i.State)
	}
}

func TestDeleteASGAndResources(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	if err := a.DeleteASG("demo-nodes"); err != nil {
		t.Fatal(err)
	}
	all, _ := listGroups(t, c.asg, &autoscaling.DescribeAutoScalingGroupsInput{})
	if len(all) != 0 {
		t.Errorf("deleted group still listed")
	}
	running, _ := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{Filters: []types.Filter{ec2Filter("instance-state-name", "running")}})
	if len(running) != 0 {
		t.Errorf("%d instances still running", len(running))
	}
	for _, id := range cl.asg.Instances {
		if err := a.DeleteInstance(id); err != nil {
			t.Fatal(err)
		}
	}
	all2, _ := listInstances(t, c.ec2, &ec2.DescribeInstancesInput{})
	if len(all2) != 0 {
		t.Errorf("deleted instances listed: %d", len(all2))
	}
	if err := a.DeleteSubnet(cl.subnets[0].ID); err != nil {
		t.Errorf("empty subnet: %v", err)
	}
	if err := a.DeleteLaunchTemplate("demo-nodes"); err != nil {
		t.Fatal(err)
	}
	lts := must[*ec2.DescribeLaunchTemplatesOutput](t)(c.ec2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{}))
	subs := must[*ec2.DescribeSubnetsOutput](t)(c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{}))
	if len(lts.LaunchTemplates) != 0 || len(subs.Subnets) != 2 {
		t.Errorf("after deletes: %d templates, %d subnets", len(lts.LaunchTemplates), len(subs.Subnets))
	}
}

func TestMixedInstancesGroup(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	cl := buildCluster(t, a)
	pct := int32(50)
	must[ASG](t)(a.AddASG(ASGSpec{
		Name: "mixed", LaunchTemplate: "demo-nodes", Max: 6, Desired: 4,
		Subnets: []string{cl.subnets[0].ID},
		MixedInstances: &MixedInstances{
			InstanceTypes:        []string{"m5.large", "m5.2xlarge"},
			OnDemandBaseCapacity: 1, OnDemandPercentageAboveBaseCapacity: &pct,
		},
	}))
	g := group(t, c.asg, "mixed")
	if g.LaunchTemplate != nil || g.MixedInstancesPolicy == nil {
		t.Fatalf("a mixed group describes its launch template only inside the policy: %+v", g)
	}
	lt := g.MixedInstancesPolicy.LaunchTemplate
	if aws.ToString(lt.LaunchTemplateSpecification.LaunchTemplateId) != cl.lt.ID || len(lt.Overrides) != 2 ||
		aws.ToString(lt.Overrides[1].InstanceType) != "m5.2xlarge" {
		t.Errorf("policy launch template: %+v", lt)
	}
	d := g.MixedInstancesPolicy.InstancesDistribution
	if aws.ToInt32(d.OnDemandBaseCapacity) != 1 || aws.ToInt32(d.OnDemandPercentageAboveBaseCapacity) != 50 {
		t.Errorf("distribution: %+v", d)
	}
	types, spot := map[string]int{}, 0
	for _, m := range g.Instances {
		inst, _ := a.Instance(aws.ToString(m.InstanceId))
		types[inst.Type]++
		if inst.Lifecycle == "spot" {
			spot++
		}
	}
	// Overrides in turn; one on-demand base, then half of the other three
	// on-demand, rounded up (2): 1 spot of 4.
	if types["m5.large"] != 2 || types["m5.2xlarge"] != 2 || spot != 1 {
		t.Errorf("launched types %v, %d spot", types, spot)
	}
	if _, err := a.AddASG(ASGSpec{Name: "bad", LaunchConfiguration: "x", MixedInstances: &MixedInstances{InstanceTypes: []string{"m5.large"}}}); err == nil {
		t.Error("a mixed instances policy without a launch template was accepted")
	}
}
