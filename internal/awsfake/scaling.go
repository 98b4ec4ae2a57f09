package awsfake

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// ASG is an Auto Scaling group as DescribeAutoScalingGroups reports it.
type ASG struct {
	Name                  string
	ARN                   string
	LaunchTemplateID      string
	LaunchTemplateName    string
	LaunchTemplateVersion string // as configured: $Default, $Latest or a number
	LaunchConfiguration   string
	// MixedInstances is the group's mixed instances policy, if any; its
	// launch template is LaunchTemplateID/Name/Version.
	MixedInstances    *MixedInstances
	Min, Max, Desired int32
	SubnetIDs         []string
	AZs               []string
	// Tags are propagated to the instances the group launches.
	Tags            map[string]string
	TargetGroupARNs []string
	CreatedTime     time.Time
	// Instances lists the members: pending, in service and terminating.
	Instances []string
	// SuspendedProcesses are the suspended scaling processes, sorted.
	SuspendedProcesses []string
}

type asg struct {
	ASG
	inflight    int  // launches decided but not yet done (Timing.LaunchDelay)
	reconciling bool // terminate calls back into reconcile; the outer loop decides
	rebalancing bool // an AZRebalance launch is under way
	retrying    bool // a failed launch will be retried (Timing.LaunchRetry)
	// suspended maps each suspended process to when it was suspended.
	suspended map[string]time.Time
	// noPropagate marks the tags kept off launched instances.
	noPropagate map[string]bool
	activities  []*Activity
	terminating map[string]*Activity // instance id -> its termination
	warm        *WarmPool            // the warm pool, if any (warmpool.go)
	filling     bool                 // a refill of the warm pool is under way
}

// ASGSpec describes an Auto Scaling group to create. Exactly one of
// LaunchTemplate (a name or an id) and LaunchConfiguration is set.
type ASGSpec struct {
	Name                  string
	LaunchTemplate        string
	LaunchTemplateVersion string // default $Default
	LaunchConfiguration   string
	// MixedInstances makes the group's launch template a mixed instances
	// policy's (it needs LaunchTemplate).
	MixedInstances    *MixedInstances
	Min, Max, Desired int32
	Subnets           []string
	Tags              map[string]string
	TargetGroupARNs   []string
}

// MixedInstances is a mixed instances policy: the launch template's
// instance type overridden by a list of types, and the split between
// on-demand and spot capacity.
type MixedInstances struct {
	// InstanceTypes are the overrides, in priority order; launches take them
	// in turn.
	InstanceTypes []string
	// OnDemandBaseCapacity is how many instances are on-demand first;
	// OnDemandPercentageAboveBaseCapacity the on-demand share above it
	// (AWS's default when nil: 100).
	OnDemandBaseCapacity                int32
	OnDemandPercentageAboveBaseCapacity *int32
}

func (m *MixedInstances) clone() *MixedInstances {
	if m == nil {
		return nil
	}
	c := *m
	c.InstanceTypes = slices.Clone(m.InstanceTypes)
	if m.OnDemandPercentageAboveBaseCapacity != nil {
		p := *m.OnDemandPercentageAboveBaseCapacity
		c.OnDemandPercentageAboveBaseCapacity = &p
	}
	return &c
}

// onDemand says whether the next launch of a group with live instances,
// onDemand of them on-demand, is on-demand.
func (m *MixedInstances) onDemand(live, onDemand int) bool {
	if int32(live) < m.OnDemandBaseCapacity {
		return true
	}
	pct := int32(100)
	if m.OnDemandPercentageAboveBaseCapacity != nil {
		pct = *m.OnDemandPercentageAboveBaseCapacity
	}
	above := live + 1 - int(m.OnDemandBaseCapacity)
	want := int(m.OnDemandBaseCapacity) + (above*int(pct)+99)/100
	return onDemand < want
}

// AddASG creates an Auto Scaling group and launches its Desired instances,
// running at once, spread over its subnets' zones.
func (a *Account) AddASG(spec ASGSpec) (ASG, error) {
	a.lock()
	defer a.unlock()
	if a.asgs[spec.Name] != nil {
		return ASG{}, errf(400, "AlreadyExists", "AutoScalingGroup by this name already exists - A group with the name %s already exists", spec.Name)
	}
	if spec.MixedInstances != nil && (spec.LaunchTemplate == "" || len(spec.MixedInstances.InstanceTypes) == 0) {
		return ASG{}, errf(400, "ValidationError", "A mixed instances policy needs a launch template and at least one instance type override.")
	}
	if (spec.LaunchTemplate == "") == (spec.LaunchConfiguration == "") {
		return ASG{}, errf(400, "ValidationError", "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.")
	}
	if spec.Min > spec.Desired || spec.Desired > spec.Max {
		return ASG{}, errf(400, "ValidationError", "Desired capacity:%d must be between the specified min size:%d and max size:%d", spec.Desired, spec.Min, spec.Max)
	}
	subs, aerr := a.subnetsOf(spec.Subnets)
	if aerr != nil {
		return ASG{}, aerr
	}
	g := &asg{ASG: ASG{
		Name: spec.Name, LaunchTemplateVersion: spec.LaunchTemplateVersion, LaunchConfiguration: spec.LaunchConfiguration,
		Min: spec.Min, Max: spec.Max, Desired: spec.Desired, Tags: maps.Clone(spec.Tags),
		TargetGroupARNs: slices.Clone(spec.TargetGroupARNs), CreatedTime: a.now(),
		MixedInstances: spec.MixedInstances.clone(),
	}}
	g.ARN = a.arn("autoscaling", fmt.Sprintf("autoScalingGroup:%s:autoScalingGroupName/%s", uuidish(a.newID("asg")), spec.Name))
	if spec.LaunchTemplate != "" {
		lt := a.lts[spec.LaunchTemplate]
		if lt == nil {
			lt = a.ltByName(spec.LaunchTemplate)
		}
		if lt == nil {
			return ASG{}, errf(400, "ValidationError", "You must use a valid fully-formed launch template. The specified launch template, with template name %s, does not exist.", spec.LaunchTemplate)
		}
		if g.LaunchTemplateVersion == "" {
			g.LaunchTemplateVersion = "$Default"
		}
		if _, ok := lt.version(g.LaunchTemplateVersion); !ok {
			return ASG{}, errf(400, "ValidationError", "You must use a valid fully-formed launch template. The specified launch template version %s does not exist.", g.LaunchTemplateVersion)
		}
		g.LaunchTemplateID, g.LaunchTemplateName = lt.ID, lt.Name
	} else if a.lcs[spec.LaunchConfiguration] == nil {
		return ASG{}, errf(400, "ValidationError", "Launch configuration name not found - Launch configuration %s not found", spec.LaunchConfiguration)
	}
	for _, s := range subs {
		g.SubnetIDs = append(g.SubnetIDs, s.ID)
		if !slices.Contains(g.AZs, s.AZ) {
			g.AZs = append(g.AZs, s.AZ)
		}
	}
	slices.Sort(g.AZs)
	a.asgs[g.Name] = g
	for range g.Desired {
		if _, aerr := a.launchInto(g, true); aerr != nil {
			return ASG{}, aerr
		}
	}
	return a.asgSnapshot(g, a.members()), nil
}

// members maps each group to its member instances, sorted by id.
func (a *Account) members() map[string][]*Instance {
	out := map[string][]*Instance{}
	for _, id := range slices.Sorted(maps.Keys(a.instances)) {
		i := a.instances[id]
		if i.ASG != "" && i.State != "terminated" && i.WarmState == "" {
			out[i.ASG] = append(out[i.ASG], i)
		}
	}
	return out
}

func (a *Account) asgSnapshot(g *asg, members map[string][]*Instance) ASG {
	out := g.ASG
	out.SubnetIDs, out.AZs = slices.Clone(g.SubnetIDs), slices.Clone(g.AZs)
	out.Tags, out.TargetGroupARNs = maps.Clone(g.Tags), slices.Clone(g.TargetGroupARNs)
	out.MixedInstances = g.MixedInstances.clone()
	out.SuspendedProcesses = slices.Sorted(maps.Keys(g.suspended))
	out.Instances = nil
	for _, i := range members[g.Name] {
		out.Instances = append(out.Instances, i.ID)
	}
	return out
}

// ASG returns an Auto Scaling group by name.
func (a *Account) ASG(name string) (ASG, bool) {
	a.lock()
	defer a.unlock()
	if g := a.asgs[name]; g != nil {
		return a.asgSnapshot(g, a.members()), true
	}
	return ASG{}, false
}

// SetDesiredCapacity changes a group's desired capacity as the API call of
// that name does: it launches or terminates instances to match.
func (a *Account) SetDesiredCapacity(name string, desired int32) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.setDesired(name, desired))
}

func errOrNil(e *apiError) error {
	if e == nil {
		return nil
	}
	return e
}

func (a *Account) setDesired(name string, desired int32) *apiError {
	g := a.asgs[name]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	if desired > g.Max {
		return errf(400, "ValidationError", "New SetDesiredCapacity value %d is above max value %d for the AutoScalingGroup.", desired, g.Max)
	}
	if desired < g.Min {
		return errf(400, "ValidationError", "New SetDesiredCapacity value %d is below min value %d for the AutoScalingGroup.", desired, g.Min)
	}
	g.Desired = desired
	a.reconcile(g)
	return nil
}

// DeleteASG deletes a group and terminates its instances, as a forced
// DeleteAutoScalingGroup does.
func (a *Account) DeleteASG(name string) error {
	a.lock()
	defer a.unlock()
	g := a.asgs[name]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	delete(a.asgs, name)
	for _, i := range a.members()[name] {
		a.terminate(i)
	}
	for _, i := range a.warmInstances(g) {
		a.terminate(i)
	}
	return nil
}

// terminateInASG is TerminateInstanceInAutoScalingGroup; it returns the
// termination's activity.
func (a *Account) terminateInASG(id string, decrement bool) (*asg, *Activity, *apiError) {
	inst := a.instances[id]
	if inst == nil || inst.ASG == "" || inst.State == "terminated" || a.asgs[inst.ASG] == nil {
		return nil, nil, errf(400, "ValidationError", "Instance Id not found - No managed instance found for instance ID: %s", id)
	}
	g := a.asgs[inst.ASG]
	before := g.Desired
	if decrement && inst.State != "shutting-down" && !a.waiting(inst) { // a waiting instance left the capacity already
		if g.Desired <= g.Min {
			return nil, nil, errf(400, "ValidationError", "Currently, desiredSize equals minSize (%d). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.", g.Min)
		}
		g.Desired--
	}
	cause := fmt.Sprintf("At %s instance %s taken out of service in response to a user request", a.now().Format(time.RFC3339), id)
	if before != g.Desired {
		cause += fmt.Sprintf(", shrinking the capacity from %d to %d", before, g.Desired)
	}
	x := g.terminating[id]
	if x == nil {
		x = a.recordTermination(g, inst, cause+".")
	}
	snap := *x // as the call answers: in progress
	a.terminate(inst)
	return g, &snap, nil
}

// live counts a group's members that are pending or in service.
func (a *Account) live(g *asg) []*Instance {
	var out []*Instance
	for _, i := range a.members()[g.Name] {
		if (i.State == "pending" || i.State == "running") && !a.waiting(i) {
			out = append(out, i)
		}
	}
	return out
}

// reconcile launches or terminates instances until the group's live members
// plus its launches in flight match Desired.
func (a *Account) reconcile(g *asg) {
	if g.reconciling {
		return
	}
	g.reconciling = true
	defer func() { g.reconciling = false }()
	live := a.live(g)
	launches := 0
	for n := len(live) + g.inflight; n < int(g.Desired) && g.active("Launch"); n++ {
		launches++
		g.inflight++
		a.after(a.timing.LaunchDelay, func() {
			g.inflight--
			if a.asgs[g.Name] != g || len(a.live(g)) >= int(g.Desired) || !g.active("Launch") {
				return
			}
			// A ready warm instance enters the group rather than a new
			// launch, and the pool is refilled (warmpool.go).
			if a.takeWarm(g) != nil {
				a.fillWarmPool(g)
				a.rebalance(g)
				return
			}
			// A launch that fails is a Failed activity; the group retries
			// after Timing.LaunchRetry, else at its next change.
			if _, aerr := a.launch(g, false, "", forCapacity); aerr == nil {
				a.fillWarmPool(g)
				a.rebalance(g)
			}
		})
	}
	for l := live; len(l) > int(g.Desired) && g.active("Terminate"); l = a.live(g) {
		victim := a.scaleInVictim(l)
		a.recordTermination(g, victim, fmt.Sprintf("At %s an instance was taken out of service in response to a difference between desired and actual capacity, shrinking the capacity from %d to %d.",
			a.now().Format(time.RFC3339), len(l), len(l)-1))
		a.terminate(victim)
	}
	if launches == 0 {
		a.fillWarmPool(g) // else after the launch
	}
	a.rebalance(g)
}

// scaleInVictim follows the default termination policy closely enough: the
// zone with the most instances, then the oldest instance there.
func (a *Account) scaleInVictim(live []*Instance) *Instance {
	perAZ := map[string]int{}
	for _, i := range live {
		perAZ[i.AZ]++
	}
	var victim *Instance
	for _, i := range live {
		if victim == nil || perAZ[i.AZ] > perAZ[victim.AZ] ||
			perAZ[i.AZ] == perAZ[victim.AZ] && (i.LaunchTime.Before(victim.LaunchTime) || i.LaunchTime.Equal(victim.LaunchTime) && i.ID < victim.ID) {
			victim = i
		}
	}
	return victim
}

// launchInto launches one instance of the group as its creation does.
func (a *Account) launchInto(g *asg, steady bool) (*Instance, *apiError) {
	return a.launch(g, steady, "", forCapacity)
}

// launch launches one instance of the group from its launch template or
// configuration, in the subnet of the least-populated zone (or of zone az)
// that has the most free addresses and no launch fault, with the template's
// volumes, and records the activity; a launch no subnet can take is a
// Failed activity with EC2's reason. steady launches it running.
func (a *Account) launch(g *asg, steady bool, az string, why reason) (*Instance, *apiError) {
	var data LaunchTemplateData
	var ver string
	if g.LaunchTemplateID != "" {
		lt := a.lts[g.LaunchTemplateID]
		if lt == nil {
			return nil, errf(400, "ValidationError", "launch template %s of group %s no longer exists", g.LaunchTemplateID, g.Name)
		}
		v, ok := lt.version(g.LaunchTemplateVersion)
		if !ok {
			return nil, errf(400, "ValidationError", "launch template version %s of group %s no longer exists", g.LaunchTemplateVersion, g.Name)
		}
		data, ver = v.Data, strconv.FormatInt(v.Number, 10)
	} else {
		lc := a.lcs[g.LaunchConfiguration]
		if lc == nil {
			return nil, errf(400, "ValidationError", "launch configuration %s of group %s no longer exists", g.LaunchConfiguration, g.Name)
		}
		data = LaunchTemplateData{InstanceType: lc.InstanceType, ImageID: lc.ImageID, Spot: lc.SpotPrice != "", BlockDevices: lc.BlockDevices}
	}
	perAZ := map[string]int{}
	live := a.live(g)
	onDemand := 0
	for _, i := range live {
		perAZ[i.AZ]++
		if i.Lifecycle != "spot" {
			onDemand++
		}
	}
	if m := g.MixedInstances; m != nil {
		data.InstanceType = m.InstanceTypes[len(live)%len(m.InstanceTypes)]
		data.Spot = !m.onDemand(len(live), onDemand)
	}
	var pick, full *subnet
	var fault *LaunchFault
	faultAZ := ""
	for _, id := range g.SubnetIDs {
		s := a.subnets[id]
		if s == nil || az != "" && s.AZ != az {
			continue
		}
		if f := a.launchFault(g, s.AZ); f != nil {
			if fault == nil || perAZ[s.AZ] < perAZ[faultAZ] {
				fault, faultAZ = f, s.AZ
			}
			continue
		}
		if s.free() == 0 {
			if full == nil {
				full = s
			}
			continue
		}
		if pick == nil || perAZ[s.AZ] < perAZ[pick.AZ] || perAZ[s.AZ] == perAZ[pick.AZ] && s.free() > pick.free() {
			pick = s
		}
	}
	if pick == nil {
		var aerr *apiError
		subnetID, zone := "", faultAZ
		switch {
		case fault != nil:
			aerr = errf(400, fault.Code, "%s", a.faultMessage(fault, data.InstanceType, faultAZ))
		case full != nil:
			subnetID, zone = full.ID, full.AZ
			aerr = errf(400, "InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", full.ID)
		default:
			return nil, errf(400, "ValidationError", "No subnet of group %s in zone %q", g.Name, az)
		}
		if !steady {
			a.failLaunch(g, why, len(live), aerr, subnetID, zone)
		}
		return nil, aerr
	}
	tags := map[string]string{}
	for k, v := range g.Tags {
		if !g.noPropagate[k] {
			tags[k] = v
		}
	}
	tags["aws:autoscaling:groupName"] = g.Name
	if g.LaunchTemplateID != "" {
		tags["aws:ec2launchtemplate:id"] = g.LaunchTemplateID
		tags["aws:ec2launchtemplate:version"] = ver
	}
	state := "running"
	if !steady && a.timing.PendingDuration > 0 {
		state = "pending"
	}
	spec := InstanceSpec{Type: data.InstanceType, Subnet: pick.ID, State: state, Tags: tags, ImageID: data.ImageID, SecurityGroups: data.SecurityGroupIDs}
	if data.Spot {
		spec.Lifecycle = "spot"
	}
	// Set the group before the hook sees the instance.
	saved := a.onLaunch
	a.onLaunch = nil
	inst, aerr := a.addInstance(spec)
	a.onLaunch = saved
	if aerr != nil {
		return nil, aerr
	}
	inst.ASG = g.Name
	if g.LaunchTemplateID != "" {
		inst.LaunchTemplateID, inst.LaunchTemplateName, inst.LaunchTemplateVersion = g.LaunchTemplateID, g.LaunchTemplateName, ver
	} else {
		inst.LaunchConfiguration = g.LaunchConfiguration
	}
	for _, bd := range data.BlockDevices {
		if _, aerr := a.addVolume(VolumeSpec{
			Type: bd.VolumeType, SizeGiB: bd.SizeGiB, Iops: bd.Iops, Instance: inst.ID,
			Device: bd.DeviceName, DeleteOnTermination: bd.DeleteOnTermination,
		}); aerr != nil {
			return nil, aerr
		}
	}
	if why == forWarmPool {
		a.record(g, Activity{
			Description: "Launching a new EC2 instance into warm pool: " + inst.ID, Cause: a.launchCause(g, why, len(live)),
			StatusCode: "Successful", Details: details(pick.ID, pick.AZ), Instance: inst.ID,
		})
		a.warmed(g, inst)
		return inst, nil
	}
	a.record(g, Activity{
		Description: "Launching a new EC2 instance: " + inst.ID, Cause: a.launchCause(g, why, len(live)),
		StatusCode: "Successful", Details: details(pick.ID, pick.AZ), Instance: inst.ID,
	})
	if state == "pending" {
		a.after(a.timing.PendingDuration, func() {
			if inst.State == "pending" {
				inst.State = "running"
			}
		})
	}
	a.emit(a.onLaunch, inst)
	return inst, nil
}
