package awsfake

import (
	"fmt"
	"slices"
	"time"
)

// Warm pools (PutWarmPool, DescribeWarmPool, DeleteWarmPool) as AWS's EC2
// Auto Scaling user guide describes them ("Decrease latency for
// applications with long boot times using warm pools", "Warm pool instance
// lifecycle"):
//
//   - A warm pool sits alongside a group: pre-initialized instances that
//     are not members. DescribeAutoScalingGroups does not list them (nor
//     count them in the group's capacity); DescribeWarmPool does, in
//     Warmed:Pending while they launch, then Warmed:Stopped,
//     Warmed:Running or Warmed:Hibernated as the pool state says.
//   - The pool's size is MaxGroupPreparedCapacity (default: the group's
//     maximum size) minus the group's desired capacity, at least MinSize.
//   - A scale-out (a replacement of a terminated instance included) takes
//     a warm instance when one is ready: the activity is "Launching a new
//     EC2 instance from warm pool: i-..." and the instance enters the
//     group Pending, then InService. Only without a ready warm instance
//     does the group launch a new one ("Launching a new EC2 instance:
//     i-...").
//   - The group then refills the pool: "Launching a new EC2 instance into
//     warm pool: i-..."; a refill EC2 refuses is a Failed activity
//     ("Launching a new EC2 instance into warm pool.  Status Reason: ..."),
//     which concerns the pool, not the group's capacity.
//
// Not modelled: lifecycle hooks (Warmed:Pending:Wait), the instance reuse
// policy (scale-in returns no instance to the pool), a pool shrinking when
// the desired capacity grows, warm instances' health checks, the group's
// WarmPoolConfiguration and WarmPoolSize in DescribeAutoScalingGroups. A warm
// instance starts no Kubernetes node (kops' nodeup does not start the
// kubelet while the instance is warming, kubernetes/kops PR#11216): the
// OnLaunch hook sees it when it enters the group.

// Warm pool states (PoolState) and warm instance lifecycle states.
const (
	WarmPoolStopped    = "Stopped"
	WarmPoolRunning    = "Running"
	WarmPoolHibernated = "Hibernated"

	WarmedPending    = "Warmed:Pending"
	WarmedStopped    = "Warmed:Stopped"
	WarmedRunning    = "Warmed:Running"
	WarmedHibernated = "Warmed:Hibernated"
)

// WarmPool is a group's warm pool configuration, as PutWarmPool takes it
// and DescribeWarmPool reports it.
type WarmPool struct {
	// MinSize is the least number of instances the pool keeps.
	MinSize int32
	// MaxGroupPreparedCapacity caps the group's instances plus the pool's;
	// nil: the group's maximum size.
	MaxGroupPreparedCapacity *int32
	// PoolState is Stopped (default), Running or Hibernated: the state warm
	// instances wait in.
	PoolState string
}

// PutWarmPool creates or changes a group's warm pool and fills it, as the
// API call of that name does. AWS refuses a warm pool on a group with a
// mixed instances policy.
func (a *Account) PutWarmPool(group string, wp WarmPool) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.putWarmPool(group, wp))
}

func (a *Account) putWarmPool(group string, wp WarmPool) *apiError {
	g := a.asgs[group]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	if g.MixedInstances != nil {
		return errf(400, "ValidationError", "You can't add a warm pool to an Auto Scaling group that has a mixed instances policy.")
	}
	if wp.PoolState == "" {
		wp.PoolState = WarmPoolStopped
	}
	if wp.PoolState != WarmPoolStopped && wp.PoolState != WarmPoolRunning && wp.PoolState != WarmPoolHibernated {
		return errf(400, "ValidationError", "1 validation error detected: Value '%s' at 'poolState' failed to satisfy constraint: Member must satisfy enum value set: [Hibernated, Running, Stopped]", wp.PoolState)
	}
	if wp.MinSize < 0 {
		return errf(400, "ValidationError", "MinSize must be at least 0")
	}
	g.warm = &wp
	a.fillWarmPool(g)
	return nil
}

// DeleteWarmPool deletes a group's warm pool and terminates its instances.
func (a *Account) DeleteWarmPool(group string) error {
	a.lock()
	defer a.unlock()
	return errOrNil(a.deleteWarmPool(group))
}

func (a *Account) deleteWarmPool(group string) *apiError {
	g := a.asgs[group]
	if g == nil {
		return errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", group)
	}
	if g.warm == nil {
		return errf(400, "ValidationError", "No warm pool found for Auto Scaling group %s", group)
	}
	g.warm = nil
	for _, i := range a.warmInstances(g) {
		a.terminate(i)
	}
	return nil
}

// WarmPoolOf returns a group's warm pool configuration and its instances
// (WarmState set), as DescribeWarmPool does; ok is false without a pool.
func (a *Account) WarmPoolOf(group string) (wp WarmPool, instances []Instance, ok bool) {
	a.lock()
	defer a.unlock()
	g := a.asgs[group]
	if g == nil || g.warm == nil {
		return WarmPool{}, nil, false
	}
	for _, i := range a.warmInstances(g) {
		instances = append(instances, i.clone())
	}
	return *g.warm, instances, true
}

// warmInstances are a group's instances in its warm pool (not shutting
// down), oldest first.
func (a *Account) warmInstances(g *asg) []*Instance {
	var out []*Instance
	for _, i := range a.instances {
		if i.ASG == g.Name && i.WarmState != "" && i.State != "terminated" && i.State != "shutting-down" {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(x, y *Instance) int {
		if c := x.LaunchTime.Compare(y.LaunchTime); c != 0 {
			return c
		}
		return cmpString(x.ID, y.ID)
	})
	return out
}

func cmpString(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// warmTarget is the number of instances the pool should hold.
func (g *asg) warmTarget() int {
	if g.warm == nil {
		return 0
	}
	prepared := g.Max
	if g.warm.MaxGroupPreparedCapacity != nil {
		prepared = *g.warm.MaxGroupPreparedCapacity
	}
	return int(max(g.warm.MinSize, prepared-g.Desired, 0))
}

// fillWarmPool launches instances into the pool until it holds its size;
// the first launch EC2 refuses is a Failed activity and ends the refill
// (the group tries again at its next change).
func (a *Account) fillWarmPool(g *asg) {
	if g.warm == nil || g.filling {
		return
	}
	g.filling = true
	defer func() { g.filling = false }()
	for len(a.warmInstances(g)) < g.warmTarget() {
		if _, aerr := a.launch(g, false, "", forWarmPool); aerr != nil {
			return
		}
	}
}

// takeWarm moves the oldest ready warm instance (not Warmed:Pending) into
// the group, recording the "from warm pool" activity, and returns it; nil
// when the pool has none ready.
func (a *Account) takeWarm(g *asg) *Instance {
	if g.warm == nil {
		return nil
	}
	for _, i := range a.warmInstances(g) {
		if i.WarmState == WarmedPending {
			continue
		}
		live := len(a.live(g))
		i.WarmState = ""
		i.State = "running"
		if a.timing.PendingDuration > 0 {
			i.State = "pending"
			a.after(a.timing.PendingDuration, func() {
				if i.State == "pending" {
					i.State = "running"
				}
			})
		}
		a.record(g, Activity{
			Description: "Launching a new EC2 instance from warm pool: " + i.ID, Cause: a.launchCause(g, forCapacity, live),
			StatusCode: "Successful", Details: details(i.SubnetID, i.AZ), Instance: i.ID,
		})
		a.emit(a.onLaunch, i)
		return i
	}
	return nil
}

// warmed puts an instance launched into the pool in the pool's state once
// its start is over.
func (a *Account) warmed(g *asg, inst *Instance) {
	inst.WarmState = WarmedPending
	done := func() {
		if inst.WarmState != WarmedPending || inst.State == "shutting-down" || inst.State == "terminated" {
			return
		}
		inst.State, inst.WarmState = "stopped", WarmedStopped
		switch {
		case g.warm != nil && g.warm.PoolState == WarmPoolRunning:
			inst.State, inst.WarmState = "running", WarmedRunning
		case g.warm != nil && g.warm.PoolState == WarmPoolHibernated:
			inst.WarmState = WarmedHibernated
		}
	}
	a.after(a.timing.PendingDuration, done)
}

// ReplaceUnhealthy has Auto Scaling replace one of a group's instances as
// its health check does when EC2 reports the instance impaired, stopped or
// terminated (a spot interruption included): a termination activity whose
// cause says so, the instance terminated, and a replacement launched.
func (a *Account) ReplaceUnhealthy(id string) error {
	a.lock()
	defer a.unlock()
	inst := a.instances[id]
	if inst == nil || inst.ASG == "" || inst.WarmState != "" || a.asgs[inst.ASG] == nil || inst.State == "terminated" || inst.State == "shutting-down" {
		return errf(400, "ValidationError", "Instance Id not found - No managed instance found for instance ID: %s", id)
	}
	g := a.asgs[inst.ASG]
	a.recordTermination(g, inst, fmt.Sprintf("At %s an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped.", a.now().Format(time.RFC3339)))
	a.terminate(inst)
	return nil
}

// ---- wire ----

func init() {
	ops := byVersion["2011-01-01"].ops
	ops["PutWarmPool"] = asPutWarmPool
	ops["DescribeWarmPool"] = asDescribeWarmPool
	ops["DeleteWarmPool"] = asDeleteWarmPool
}

func asPutWarmPool(c *call) (any, *apiError) {
	wp := WarmPool{PoolState: c.form.str("PoolState")}
	n, has, aerr := c.form.int("MinSize")
	if aerr != nil {
		return nil, aerr
	}
	if has {
		wp.MinSize = int32(n)
	}
	if n, has, aerr = c.form.int("MaxGroupPreparedCapacity"); aerr != nil {
		return nil, aerr
	} else if has && n >= 0 {
		m := int32(n)
		wp.MaxGroupPreparedCapacity = &m
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.putWarmPool(c.form.str("AutoScalingGroupName"), wp); aerr != nil {
		return nil, aerr
	}
	return &xmlWriter{}, nil
}

func asDeleteWarmPool(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	if aerr := a.deleteWarmPool(c.form.str("AutoScalingGroupName")); aerr != nil {
		return nil, aerr
	}
	return &xmlWriter{}, nil
}

// DescribeWarmPool: the configuration (none without a pool) and the warm
// instances, MaxRecords at most 50 (default 50).
func asDescribeWarmPool(c *call) (any, *apiError) {
	size, has, aerr := c.form.int("MaxRecords")
	if aerr != nil {
		return nil, aerr
	}
	if !has {
		size = 50
	}
	if size < 1 || size > 50 {
		return nil, errf(400, "ValidationError", "1 validation error detected: Value '%d' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to 50", size)
	}
	a := c.acct
	a.lock()
	defer a.unlock()
	name := c.form.str("AutoScalingGroupName")
	g := a.asgs[name]
	if g == nil {
		return nil, errf(400, "ValidationError", "AutoScalingGroup name not found - AutoScalingGroup %s not found", name)
	}
	var all []*Instance
	if g.warm != nil {
		all = a.warmInstances(g)
	}
	key := func(i *Instance) string { return i.ID }
	byKey(all, key)
	page, next, aerr := paginate(all, key, c.form.str("NextToken"), size, asBadToken)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	if wp := g.warm; wp != nil {
		w.elem("WarmPoolConfiguration", func() {
			w.int("MinSize", int64(wp.MinSize))
			if wp.MaxGroupPreparedCapacity != nil {
				w.int("MaxGroupPreparedCapacity", int64(*wp.MaxGroupPreparedCapacity))
			}
			w.leaf("PoolState", wp.PoolState)
		})
	}
	w.list("Instances", "member", len(page), func(k int) {
		i := page[k]
		w.leaf("InstanceId", i.ID)
		w.leaf("InstanceType", i.Type)
		w.leaf("AvailabilityZone", i.AZ)
		w.leaf("LifecycleState", i.WarmState)
		w.leaf("HealthStatus", "Healthy")
		if i.LaunchTemplateID != "" {
			w.elem("LaunchTemplate", func() {
				w.leaf("LaunchTemplateId", i.LaunchTemplateID)
				w.leaf("LaunchTemplateName", i.LaunchTemplateName)
				w.leaf("Version", i.LaunchTemplateVersion)
			})
		} else {
			w.opt("LaunchConfigurationName", i.LaunchConfiguration)
		}
		w.bool("ProtectedFromScaleIn", false)
	})
	w.opt("NextToken", next)
	return w, nil
}
