package roll

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
)

// Group is an Auto Scaling group as the roll watches it.
type Group struct {
	Name    string
	Desired int32
	// Instances are the members, by id, with their zone; InService lists
	// those pending or in service (not terminating).
	Instances map[string]string
	InService []string
	// Zones are the group's Availability Zones.
	Zones []string
	// Suspended are the suspended processes.
	Suspended []string
}

// Activity is a scaling activity of a group.
type Activity struct {
	ID          string
	Description string
	Cause       string
	Start       time.Time
	// Status is Successful, Failed, Cancelled, InProgress... Message is
	// why a launch failed, in EC2's words.
	Status, Message string
	// Instance is the instance launched or terminated, read from the
	// description ("Launching a new EC2 instance: i-0abc"). Launch: the
	// activity launches an instance into the group, new or from its warm
	// pool (FromWarmPool: "Launching a new EC2 instance from warm pool:
	// i-0abc"). Refill: it launches one into the group's warm pool
	// ("Launching a new EC2 instance into warm pool: i-0abc"), which is no
	// member and replaces nothing: not a Launch, and its failure is not a
	// failed launch.
	Instance             string
	Launch, FromWarmPool bool
	Refill               bool
	// Subnet and Zone are read from the activity's Details JSON ({"Subnet
	// ID": ..., "Availability Zone": ...}) when AWS gives them.
	Subnet, Zone string
}

// Failed reports whether the activity is a launch into the group that did
// not happen (a failed refill of the warm pool is not one).
func (a Activity) Failed() bool {
	return a.Launch && (a.Status == string(astypes.ScalingActivityStatusCodeFailed) || a.Status == string(astypes.ScalingActivityStatusCodeCancelled))
}

// RollProcesses are the Auto Scaling processes a roll suspends while it
// runs, because each can add or terminate instances behind its back:
// AZRebalance terminates an instance of the fullest zone, drained or not,
// once a termination with decrement (--surge) leaves the zones unbalanced
// (as eks-rolling-update found); AlarmNotification and ScheduledActions
// change the desired capacity the roll counts on (a scale-in terminates an
// undrained node); InstanceRefresh replaces instances by itself. Launch and
// Terminate must stay: the roll needs them. HealthCheck and
// ReplaceUnhealthy stay too: they only act on instances EC2 or the load
// balancer reports unhealthy, not on nodes the roll cordons or drains, and
// suspending them for a long roll would leave broken instances in service.
// (AWS, "Suspend and resume Amazon EC2 Auto Scaling processes".)
var RollProcesses = []string{"AZRebalance", "AlarmNotification", "InstanceRefresh", "ScheduledActions"}

// TagSuspended is the group tag where the roll records the processes it
// suspended (comma-separated), so that a run after an interruption, or
// roll --reset, resumes exactly those. Kept on the group, not on the nodes:
// the nodes of a finished group are gone.
const TagSuspended = "upgradeguard.io/roll-suspended-processes"

// launchedRE reads a launch activity's description: a new instance, one
// from the warm pool, or one into it (AWS, "Warm pools for Amazon EC2 Auto
// Scaling": the activities of a warm pool); the instance id when launched.
var launchedRE = regexp.MustCompile(`^Launching a new EC2 instance( from warm pool| into warm pool)?(?:[:.]\s*(i-[0-9a-f]+))?`)

// activityDetails reads the structured part of an activity: its Details
// JSON.
func activityDetails(s string) (subnet, zone string) {
	var d struct {
		Subnet string `json:"Subnet ID"`
		Zone   string `json:"Availability Zone"`
	}
	if json.Unmarshal([]byte(s), &d) != nil {
		return "", ""
	}
	return d.Subnet, d.Zone
}

// Group implements Provider.
func (p *AWS) Group(ctx context.Context, name string) (Group, error) {
	g, err := p.group(ctx, name)
	if err != nil {
		return Group{}, err
	}
	out := Group{Name: name, Desired: aws.ToInt32(g.DesiredCapacity), Instances: map[string]string{}, Zones: g.AvailabilityZones}
	for _, i := range g.Instances {
		id := aws.ToString(i.InstanceId)
		if strings.HasPrefix(string(i.LifecycleState), "Warmed:") {
			// In the warm pool, not the group: AWS lists those with
			// DescribeWarmPool, but a member list that did would not make
			// one a member (a replacement taken from the pool must not
			// count as one before).
			continue
		}
		out.Instances[id] = aws.ToString(i.AvailabilityZone)
		switch i.LifecycleState {
		case astypes.LifecycleStateInService, astypes.LifecycleStatePending, astypes.LifecycleStatePendingWait, astypes.LifecycleStatePendingProceed:
			out.InService = append(out.InService, id)
		}
	}
	sort.Strings(out.InService)
	for _, sp := range g.SuspendedProcesses {
		out.Suspended = append(out.Suspended, aws.ToString(sp.ProcessName))
	}
	sort.Strings(out.Suspended)
	return out, nil
}

// Activities implements Provider: the group's activities, newest first,
// read until one started before since.
func (p *AWS) Activities(ctx context.Context, group string, since time.Time) ([]Activity, error) {
	var out []Activity
	pages := autoscaling.NewDescribeScalingActivitiesPaginator(p.AutoScaling, &autoscaling.DescribeScalingActivitiesInput{AutoScalingGroupName: aws.String(group)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing the scaling activities of %s: %w", group, err)
		}
		for _, x := range page.Activities {
			start := aws.ToTime(x.StartTime)
			if start.Before(since) {
				return out, nil
			}
			a := Activity{
				ID: aws.ToString(x.ActivityId), Description: aws.ToString(x.Description), Cause: aws.ToString(x.Cause),
				Start: start, Status: string(x.StatusCode), Message: aws.ToString(x.StatusMessage),
			}
			a.Subnet, a.Zone = activityDetails(aws.ToString(x.Details))
			if m := launchedRE.FindStringSubmatch(a.Description); m != nil {
				a.Instance = m[2]
				switch m[1] {
				case " into warm pool":
					a.Refill = true
				case " from warm pool":
					a.Launch, a.FromWarmPool = true, true
				default:
					a.Launch = true
				}
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func (p *AWS) recorded(g astypes.AutoScalingGroup) []string {
	for _, t := range g.Tags {
		if aws.ToString(t.Key) == TagSuspended && aws.ToString(t.Value) != "" {
			return strings.Split(aws.ToString(t.Value), ",")
		}
	}
	return nil
}

func (p *AWS) record(ctx context.Context, group string, procs []string) error {
	tag := astypes.Tag{ResourceId: aws.String(group), ResourceType: aws.String("auto-scaling-group"), Key: aws.String(TagSuspended)}
	var err error
	if len(procs) == 0 {
		_, err = p.AutoScaling.DeleteTags(ctx, &autoscaling.DeleteTagsInput{Tags: []astypes.Tag{tag}})
	} else {
		tag.Value, tag.PropagateAtLaunch = aws.String(strings.Join(procs, ",")), aws.Bool(false)
		_, err = p.AutoScaling.CreateOrUpdateTags(ctx, &autoscaling.CreateOrUpdateTagsInput{Tags: []astypes.Tag{tag}})
	}
	if err != nil {
		return fmt.Errorf("recording the processes the roll suspended on group %s (tag %s): %w", group, TagSuspended, err)
	}
	return nil
}

// HoldProcesses implements Provider. The record is written before the
// suspension, so an interruption in between resumes a process that was
// not suspended yet, which does nothing.
func (p *AWS) HoldProcesses(ctx context.Context, group string) ([]string, error) {
	g, err := p.group(ctx, group)
	if err != nil {
		return nil, err
	}
	ours := p.recorded(g)
	var suspended, todo []string
	for _, sp := range g.SuspendedProcesses {
		suspended = append(suspended, aws.ToString(sp.ProcessName))
	}
	for _, proc := range RollProcesses {
		if !slices.Contains(suspended, proc) {
			todo = append(todo, proc)
		}
	}
	if len(todo) == 0 {
		return ours, nil
	}
	all := append(slices.Clone(ours), todo...)
	slices.Sort(all)
	all = slices.Compact(all)
	if err := p.record(ctx, group, all); err != nil {
		return nil, err
	}
	if _, err := p.AutoScaling.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{AutoScalingGroupName: aws.String(group), ScalingProcesses: todo}); err != nil {
		return nil, fmt.Errorf("suspending %s on group %s: %w", strings.Join(todo, ", "), group, err)
	}
	return all, nil
}

// ReleaseProcesses implements Provider: resume first, then update the
// record, so an interruption in between resumes again, which does nothing.
func (p *AWS) ReleaseProcesses(ctx context.Context, group string, keep []string) ([]string, error) {
	g, err := p.group(ctx, group)
	if err != nil {
		return nil, err
	}
	var resume, left []string
	for _, proc := range p.recorded(g) {
		if slices.Contains(keep, proc) {
			left = append(left, proc)
		} else {
			resume = append(resume, proc)
		}
	}
	if len(resume) == 0 {
		return nil, nil
	}
	if _, err := p.AutoScaling.ResumeProcesses(ctx, &autoscaling.ResumeProcessesInput{AutoScalingGroupName: aws.String(group), ScalingProcesses: resume}); err != nil {
		return nil, fmt.Errorf("resuming %s on group %s: %w", strings.Join(resume, ", "), group, err)
	}
	return resume, p.record(ctx, group, left)
}
