package awsfake

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// ---- scaling processes ----

// ScalingProcesses are the processes of an Auto Scaling group that
// SuspendProcesses and ResumeProcesses take (all of them when none is named).
// The fake honours Launch (no launches while suspended), Terminate (no
// scale-in while suspended; TerminateInstanceInAutoScalingGroup still works)
// and AZRebalance; the others are recorded and reported only.
var ScalingProcesses = []string{"Launch", "Terminate", "AddToLoadBalancer", "AlarmNotification", "AZRebalance",
	"HealthCheck", "InstanceRefresh", "ReplaceUnhealthy", "ScheduledActions"}

func (g *asg) active(process string) bool {
	_, suspended := g.suspended[process]
	return !suspended
}

// SuspendProcesses suspends processes of a group (all when none is named),
// as the API call of that name does.
func (a *Account) SuspendProcesses(group string, processes ...string) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.setProcesses(group, processes, true))
}

// ResumeProcesses resumes processes of a group (all when none is named);
// the group then catches up on what they would have done (launches,
// scale-in, rebalancing).
func (a *Account) ResumeProcesses(group string, processes ...string) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.setProcesses(group, processes, false))
}

func (a *Account) setProcesses(group string, processes []string, suspend bool) *apiError {
	g := a.asgs[group]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	if len(processes) == 0 {
		processes = ScalingProcesses
	}
	for _, p := range processes {
		if !slices.Contains(ScalingProcesses, p) {
			return errf(400, "ValidationError", "Process names must be from: %s. %s is not.", strings.Join(ScalingProcesses, ", "), p)
		}
	}
	for _, p := range processes {
		if suspend {
			if g.suspended == nil {
				g.suspended = map[string]time.Time{}
			}
			if _, ok := g.suspended[p]; !ok {
				g.suspended[p] = a.now()
			}
		} else {
			delete(g.suspended, p)
		}
	}
	if !suspend {
		a.reconcile(g)
	}
	return nil
}

// ---- group tags ----

// SetASGTag adds or changes a tag of a group, as CreateOrUpdateTags does.
// A tag that does not propagate at launch is kept off the instances the
// group launches afterwards.
func (a *Account) SetASGTag(group, key, value string, propagate bool) error {
	a.lock()
	defer a.unlock()
	g := a.asgs[group]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	a.setTag(g, key, value, propagate)
	return nil
}

func (a *Account) setTag(g *asg, key, value string, propagate bool) {
	if g.Tags == nil {
		g.Tags = map[string]string{}
	}
	g.Tags[key] = value
	if g.noPropagate == nil {
		g.noPropagate = map[string]bool{}
	}
	g.noPropagate[key] = !propagate
}

// ---- scaling activities ----

// Activity is a scaling activity as DescribeScalingActivities reports it.
// The fake records one for every launch (successful or failed) and every
// termination of a group's instance.
type Activity struct {
	ID          string
	Group       string
	Description string
	Cause       string
	StartTime   time.Time
	EndTime     time.Time // zero while in progress
	// StatusCode is Successful, Failed or InProgress; StatusMessage says why
	// a launch failed, in EC2's words.
	StatusCode    string
	StatusMessage string
	Progress      int32
	// Details is the activity's JSON details: subnet and zone.
	Details  string
	Instance string // the instance launched or terminated, if any

	seq uint64
}

// key orders activities newest first, the order AWS lists them in.
func (x *Activity) key() string { return fmt.Sprintf("%016x", math.MaxUint64-x.seq) }

// ScalingActivities returns a group's activities, newest first.
func (a *Account) ScalingActivities(group string) []Activity {
	a.lock()
	defer a.unlock()
	var out []Activity
	if g := a.asgs[group]; g != nil {
		for _, x := range slices.Backward(g.activities) {
			out = append(out, *x)
		}
	}
	return out
}

func (a *Account) record(g *asg, x Activity) *Activity {
	a.seq["activity"]++
	x.seq = a.seq["activity"]
	x.ID = uuidish(a.newID("act"))
	x.Group = g.Name
	if x.StartTime.IsZero() {
		x.StartTime = a.now()
	}
	if x.StatusCode != "InProgress" && x.EndTime.IsZero() {
		x.EndTime = x.StartTime
		x.Progress = 100
	}
	p := &x
	g.activities = append(g.activities, p)
	return p
}

func details(subnet, zone string) string {
	return fmt.Sprintf(`{"Subnet ID":"%s","Availability Zone":"%s"}`, subnet, zone)
}

// Why a group launches or terminates an instance, for the activity's cause.
type reason int

const (
	forCapacity  reason = iota // desired and actual capacity differ
	forRebalance               // AZRebalance
	forUser                    // TerminateInstanceInAutoScalingGroup
	forWarmPool                // filling the warm pool (warmpool.go)
)

func (a *Account) launchCause(g *asg, why reason, live int) string {
	at := a.now().Format(time.RFC3339)
	if why == forRebalance {
		return fmt.Sprintf("At %s an instance was launched to aid in balancing the group's zones.", at)
	}
	if why == forWarmPool {
		return fmt.Sprintf("At %s an instance was launched in response to a warm pool size change.", at)
	}
	return fmt.Sprintf("At %s an instance was started in response to a difference between desired and actual capacity, increasing the capacity from %d to %d.", at, live, live+1)
}

// ---- failed launches ----

// Launch failure codes FailLaunches takes.
const (
	// InsufficientInstanceCapacity: EC2 has no capacity of the instance type
	// in the zone; the group launches in another of its zones if one has.
	InsufficientInstanceCapacity = "InsufficientInstanceCapacity"
	// VcpuLimitExceeded: the account's vCPU quota is used up; no zone helps.
	VcpuLimitExceeded = "VcpuLimitExceeded"
)

// LaunchFault makes a group's launches fail as EC2 refuses them. A subnet
// without a free address fails a launch without a fault (its activity says
// so), when no other subnet of the group has one.
type LaunchFault struct {
	Group string // "" for every group
	AZ    string // "" for every zone (InsufficientInstanceCapacity only)
	Code  string // InsufficientInstanceCapacity or VcpuLimitExceeded
}

// FailLaunches adds a launch fault; it lasts until ClearLaunchFaults.
func (a *Account) FailLaunches(f LaunchFault) error {
	if f.Code != InsufficientInstanceCapacity && f.Code != VcpuLimitExceeded {
		return fmt.Errorf("awsfake: launch fault code %q: want %s or %s", f.Code, InsufficientInstanceCapacity, VcpuLimitExceeded)
	}
	a.lock()
	defer a.unlock()
	a.launchFaults = append(a.launchFaults, f)
	return nil
}

// ClearLaunchFaults removes every launch fault: capacity is back, and the
// groups launch what they are short of (and rebalance) at once.
func (a *Account) ClearLaunchFaults() {
	a.lock()
	defer a.unlock()
	a.launchFaults = nil
	for _, name := range slices.Sorted(maps.Keys(a.asgs)) {
		a.reconcile(a.asgs[name])
	}
}

// launchFault returns the fault that stops a launch of the group in zone az
// ("" for any zone), if any.
func (a *Account) launchFault(g *asg, az string) *LaunchFault {
	for i, f := range a.launchFaults {
		if f.Group != "" && f.Group != g.Name {
			continue
		}
		if f.Code == VcpuLimitExceeded || f.AZ == "" || f.AZ == az {
			return &a.launchFaults[i]
		}
	}
	return nil
}

// faultMessage is EC2's message for a refused launch.
func (a *Account) faultMessage(f *LaunchFault, itype, az string) string {
	if f.Code == VcpuLimitExceeded {
		limit := 32.0
		if q := a.quotas[quotaKey("ec2", "L-1216C47A")]; q != nil {
			limit = q.Value
		}
		return fmt.Sprintf("You have requested more vCPU capacity than your current vCPU limit of %.0f allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.", limit)
	}
	var others []string
	region := strings.TrimRight(az, "abcdefghijklmnopqrstuvwxyz")
	for _, z := range []string{"a", "b", "c"} {
		if zone := region + z; zone != az && !slices.ContainsFunc(a.launchFaults, func(f LaunchFault) bool { return f.AZ == zone || f.AZ == "" }) {
			others = append(others, zone)
		}
	}
	msg := fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.", itype, az)
	if len(others) > 0 {
		msg += fmt.Sprintf(" You can currently get %s capacity by not specifying an Availability Zone in your request or choosing %s.", itype, strings.Join(others, ", "))
	}
	return msg
}

// failLaunch records a failed launch activity and, with Timing.LaunchRetry,
// retries it later as Auto Scaling does.
func (a *Account) failLaunch(g *asg, why reason, live int, aerr *apiError, subnet, zone string) {
	msg := aerr.Message + " Launching EC2 instance failed."
	desc := "Launching a new EC2 instance.  Status Reason: " + msg
	if why == forWarmPool {
		desc = "Launching a new EC2 instance into warm pool.  Status Reason: " + msg
	}
	a.record(g, Activity{
		Description: desc,
		Cause:       a.launchCause(g, why, live), StatusCode: "Failed", StatusMessage: msg, Details: details(subnet, zone),
	})
	if a.timing.LaunchRetry > 0 && why == forCapacity && !g.retrying {
		g.retrying = true
		a.after(a.timing.LaunchRetry, func() {
			g.retrying = false
			if a.asgs[g.Name] == g {
				a.reconcile(g)
			}
		})
	}
}

// ---- AZRebalance ----

// zoneCounts counts a group's live instances per zone of the group.
func (a *Account) zoneCounts(g *asg) map[string]int {
	out := map[string]int{}
	for _, z := range g.AZs {
		out[z] = 0
	}
	for _, i := range a.live(g) {
		out[i.AZ]++
	}
	return out
}

// rebalance does what AZRebalance does for a group at its desired capacity
// whose zones differ by more than one instance: it launches an instance in
// the zone with the fewest, then terminates one in the zone with the most
// (oldest first), whatever runs on it. It runs while AZRebalance, Launch
// and Terminate are all active. (AWS rebalances after the group becomes
// unbalanced: explicit terminations, changed zones, capacity coming back;
// the fake checks after every change of the group.)
func (a *Account) rebalance(g *asg) {
	if g.rebalancing || g.inflight > 0 || !g.active("AZRebalance") || !g.active("Launch") || !g.active("Terminate") {
		return
	}
	if len(a.live(g)) != int(g.Desired) || len(g.AZs) < 2 {
		return
	}
	counts := a.zoneCounts(g)
	fewest, most := g.AZs[0], g.AZs[0]
	for _, z := range g.AZs {
		if counts[z] < counts[fewest] {
			fewest = z
		}
		if counts[z] > counts[most] {
			most = z
		}
	}
	if counts[most]-counts[fewest] < 2 || a.launchFault(g, fewest) != nil {
		return
	}
	g.rebalancing = true
	a.after(a.timing.LaunchDelay, func() {
		g.rebalancing = false
		if a.asgs[g.Name] != g || !g.active("AZRebalance") {
			return
		}
		inst, aerr := a.launch(g, false, fewest, forRebalance)
		if aerr != nil {
			return
		}
		var there []*Instance
		for _, i := range a.live(g) {
			if i.AZ == most && i != inst {
				there = append(there, i)
			}
		}
		if len(there) == 0 {
			return
		}
		victim := a.scaleInVictim(there)
		a.recordTermination(g, victim, fmt.Sprintf("At %s an instance was taken out of service in response to rebalancing the group's Availability Zones.", a.now().Format(time.RFC3339)))
		a.terminate(victim)
	})
}

// recordTermination records the activity of an instance's termination; it
// ends when the instance is terminated.
func (a *Account) recordTermination(g *asg, inst *Instance, cause string) *Activity {
	x := a.record(g, Activity{
		Description: "Terminating EC2 instance: " + inst.ID, Cause: cause, StatusCode: "InProgress",
		Details: details(inst.SubnetID, inst.AZ), Instance: inst.ID,
	})
	if g.terminating == nil {
		g.terminating = map[string]*Activity{}
	}
	g.terminating[inst.ID] = x
	return x
}

// terminated ends the termination activity of an instance, if any.
func (a *Account) terminated(g *asg, inst *Instance) {
	if x := g.terminating[inst.ID]; x != nil {
		x.StatusCode, x.Progress, x.EndTime = "Successful", 100, a.now()
		delete(g.terminating, inst.ID)
	}
}
