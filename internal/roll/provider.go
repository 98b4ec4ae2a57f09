package roll

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// Instance is the machine behind a node, as its provider sees it.
type Instance struct {
	ID    string
	Group string // the Auto Scaling group
	// Launch is what the instance was launched from: "lt-0abc:3" (a launch
	// template and its version number) or "lc:<name>" (a launch
	// configuration); Current what the group launches from now.
	Launch, Current string
	// InService is false once the instance is terminating or gone.
	InService bool
}

// Outdated reports whether the group would launch the instance differently
// now.
func (i Instance) Outdated() bool { return i.Launch != i.Current }

// Provider replaces the machines behind nodes.
type Provider interface {
	// Describe returns the instances of these ids that the provider knows;
	// an id it does not know (terminated and gone) is left out.
	Describe(ctx context.Context, ids []string) (map[string]Instance, error)
	// Terminate ends an instance. Without decrement its group launches a
	// replacement; with it the group shrinks by one.
	Terminate(ctx context.Context, inst Instance, decrement bool) error
	// Surge raises the desired capacity of a group by one and returns the
	// new desired capacity.
	Surge(ctx context.Context, group string) (int32, error)
	// Group describes a group: desired capacity, members, suspended
	// processes.
	Group(ctx context.Context, name string) (Group, error)
	// Activities returns the group's scaling activities that started at or
	// after since, newest first.
	Activities(ctx context.Context, group string, since time.Time) ([]Activity, error)
	// HoldProcesses suspends, for the roll, the group's processes that
	// could terminate or add instances behind its back (RollProcesses), and
	// records on the group which of them the roll suspended (not those
	// suspended before). It returns all the processes the roll holds
	// suspended, those of an earlier interrupted run included.
	HoldProcesses(ctx context.Context, group string) ([]string, error)
	// ReleaseProcesses resumes the processes the roll recorded as suspended
	// on the group, except keep, and updates the record. It returns the
	// processes resumed.
	ReleaseProcesses(ctx context.Context, group string, keep []string) ([]string, error)
}

// AutoScalingAPI is the part of the Auto Scaling client the AWS provider
// calls.
type AutoScalingAPI interface {
	DescribeAutoScalingGroups(context.Context, *autoscaling.DescribeAutoScalingGroupsInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeAutoScalingGroupsOutput, error)
	TerminateInstanceInAutoScalingGroup(context.Context, *autoscaling.TerminateInstanceInAutoScalingGroupInput, ...func(*autoscaling.Options)) (*autoscaling.TerminateInstanceInAutoScalingGroupOutput, error)
	SetDesiredCapacity(context.Context, *autoscaling.SetDesiredCapacityInput, ...func(*autoscaling.Options)) (*autoscaling.SetDesiredCapacityOutput, error)
	DescribeScalingActivities(context.Context, *autoscaling.DescribeScalingActivitiesInput, ...func(*autoscaling.Options)) (*autoscaling.DescribeScalingActivitiesOutput, error)
	SuspendProcesses(context.Context, *autoscaling.SuspendProcessesInput, ...func(*autoscaling.Options)) (*autoscaling.SuspendProcessesOutput, error)
	ResumeProcesses(context.Context, *autoscaling.ResumeProcessesInput, ...func(*autoscaling.Options)) (*autoscaling.ResumeProcessesOutput, error)
	CreateOrUpdateTags(context.Context, *autoscaling.CreateOrUpdateTagsInput, ...func(*autoscaling.Options)) (*autoscaling.CreateOrUpdateTagsOutput, error)
	DeleteTags(context.Context, *autoscaling.DeleteTagsInput, ...func(*autoscaling.Options)) (*autoscaling.DeleteTagsOutput, error)
}

// EC2API is the part of the EC2 client the AWS provider calls: resolving a
// group's $Default or $Latest launch template version to a number.
type EC2API interface {
	DescribeLaunchTemplates(context.Context, *ec2.DescribeLaunchTemplatesInput, ...func(*ec2.Options)) (*ec2.DescribeLaunchTemplatesOutput, error)
}

// AWS replaces nodes through their EC2 Auto Scaling groups.
type AWS struct {
	AutoScaling AutoScalingAPI
	EC2         EC2API
	// ELBv2 and ELB read which load balancers still route to an instance
	// before it is terminated (loadbalancers.go); without them the roll
	// waits DeregistrationOptions.Wait instead.
	ELBv2 ELBv2API
	ELB   ELBAPI
	// ClusterName, when set, limits the provider to the groups tagged
	// kubernetes.io/cluster/<ClusterName> (what the roll's IAM policy
	// allows): others are neither described nor changed.
	ClusterName string

	mu sync.Mutex // serialises Surge's read-modify-write of the capacity
}

func (p *AWS) clusterTag() string { return "kubernetes.io/cluster/" + p.ClusterName }

// groups describes the Auto Scaling groups (named ones, or all of the
// cluster's).
func (p *AWS) groups(ctx context.Context, names ...string) ([]astypes.AutoScalingGroup, error) {
	in := &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: names}
	if p.ClusterName != "" {
		in.Filters = []astypes.Filter{{Name: aws.String("tag-key"), Values: []string{p.clusterTag()}}}
	}
	var out []astypes.AutoScalingGroup
	pages := autoscaling.NewDescribeAutoScalingGroupsPaginator(p.AutoScaling, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing Auto Scaling groups: %w", err)
		}
		out = append(out, page.AutoScalingGroups...)
	}
	return out, nil
}

// groupTemplate returns the launch template (id and configured version) of
// a group, whether plain or in a mixed instances policy.
func groupTemplate(g astypes.AutoScalingGroup) (id, version string) {
	lt := g.LaunchTemplate
	if lt == nil && g.MixedInstancesPolicy != nil && g.MixedInstancesPolicy.LaunchTemplate != nil {
		lt = g.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification
	}
	if lt == nil {
		return "", ""
	}
	return aws.ToString(lt.LaunchTemplateId), aws.ToString(lt.Version)
}

// Describe implements Provider.
func (p *AWS) Describe(ctx context.Context, ids []string) (map[string]Instance, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	groups, err := p.groups(ctx)
	if err != nil {
		return nil, err
	}
	// Resolve $Default and $Latest of the templates the groups use.
	resolve := map[string]bool{}
	for _, g := range groups {
		if id, v := groupTemplate(g); id != "" && (v == "" || v == "$Default" || v == "$Latest") {
			resolve[id] = true
		}
	}
	type versions struct{ def, latest int64 }
	resolved := map[string]versions{}
	if len(resolve) > 0 {
		in := &ec2.DescribeLaunchTemplatesInput{LaunchTemplateIds: slices.Sorted(maps.Keys(resolve))}
		pages := ec2.NewDescribeLaunchTemplatesPaginator(p.EC2, in)
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing launch templates %v: %w", in.LaunchTemplateIds, err)
			}
			for _, lt := range page.LaunchTemplates {
				resolved[aws.ToString(lt.LaunchTemplateId)] = versions{aws.ToInt64(lt.DefaultVersionNumber), aws.ToInt64(lt.LatestVersionNumber)}
			}
		}
	}
	out := map[string]Instance{}
	for _, g := range groups {
		current := "lc:" + aws.ToString(g.LaunchConfigurationName)
		if id, v := groupTemplate(g); id != "" {
			switch v {
			case "", "$Default":
				v = strconv.FormatInt(resolved[id].def, 10)
			case "$Latest":
				v = strconv.FormatInt(resolved[id].latest, 10)
			}
			current = id + ":" + v
		}
		for _, i := range g.Instances {
			id := aws.ToString(i.InstanceId)
			if !want[id] {
				continue
			}
			launch := "lc:" + aws.ToString(i.LaunchConfigurationName)
			if i.LaunchTemplate != nil {
				launch = aws.ToString(i.LaunchTemplate.LaunchTemplateId) + ":" + aws.ToString(i.LaunchTemplate.Version)
			}
			state := i.LifecycleState
			out[id] = Instance{
				ID: id, Group: aws.ToString(g.AutoScalingGroupName), Launch: launch, Current: current,
				InService: state == astypes.LifecycleStateInService || state == astypes.LifecycleStatePending ||
					state == astypes.LifecycleStatePendingWait || state == astypes.LifecycleStatePendingProceed,
			}
		}
	}
	return out, nil
}

// Terminate implements Provider with TerminateInstanceInAutoScalingGroup.
func (p *AWS) Terminate(ctx context.Context, inst Instance, decrement bool) error {
	if inst.Group == "" {
		return fmt.Errorf("instance %s is in no Auto Scaling group this provider knows", inst.ID)
	}
	_, err := p.AutoScaling.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId:                     aws.String(inst.ID),
		ShouldDecrementDesiredCapacity: aws.Bool(decrement),
	})
	if err != nil {
		return fmt.Errorf("terminating instance %s in Auto Scaling group %s (decrement %v): %w", inst.ID, inst.Group, decrement, err)
	}
	return nil
}

// Surge implements Provider: desired capacity + 1, within the group's
// maximum.
func (p *AWS) Surge(ctx context.Context, group string) (int32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, err := p.group(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("surge: %w", err)
	}
	desired, maxSize := aws.ToInt32(g.DesiredCapacity), aws.ToInt32(g.MaxSize)
	if desired+1 > maxSize {
		return 0, fmt.Errorf("surge: Auto Scaling group %s is at its maximum size %d (desired %d); raise the maximum or roll without --surge", group, maxSize, desired)
	}
	_, err = p.AutoScaling.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String(group),
		DesiredCapacity:      aws.Int32(desired + 1),
		HonorCooldown:        aws.Bool(false),
	})
	if err != nil {
		return 0, fmt.Errorf("surge: setting the desired capacity of %s from %d to %d: %w", group, desired, desired+1, err)
	}
	return desired + 1, nil
}

// group describes one group, refusing one outside the cluster.
func (p *AWS) group(ctx context.Context, name string) (astypes.AutoScalingGroup, error) {
	gs, err := p.groups(ctx, name)
	if err != nil {
		return astypes.AutoScalingGroup{}, err
	}
	if len(gs) != 1 {
		if p.ClusterName != "" {
			return astypes.AutoScalingGroup{}, fmt.Errorf("no Auto Scaling group %s among those tagged %s", name, p.clusterTag())
		}
		return astypes.AutoScalingGroup{}, fmt.Errorf("no Auto Scaling group %s", name)
	}
	return gs[0], nil
}

// errNoInstance is returned for a node without an EC2 provider ID.
var errNoInstance = errors.New("no EC2 instance id in spec.providerID")
