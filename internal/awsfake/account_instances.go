package awsfake

import (
	"maps"
	"slices"
	"time"
)

// ---- instance types ----

// AddInstanceType adds or replaces an instance type of the catalogue.
func (a *Account) AddInstanceType(t InstanceType) {
	a.lock()
	defer a.unlock()
	t.Architectures = slices.Clone(t.Architectures)
	t.NetworkCards = slices.Clone(t.NetworkCards)
	a.types[t.Name] = t
}

// DeleteInstanceType removes a type from the catalogue.
func (a *Account) DeleteInstanceType(name string) {
	a.lock()
	defer a.unlock()
	delete(a.types, name)
}

// ---- instances ----

// Instance is an EC2 instance as DescribeInstances reports it.
type Instance struct {
	ID    string
	Type  string
	State string // pending, running, shutting-down, terminated, stopping, stopped
	// Lifecycle is EC2's instanceLifecycle: empty for on-demand, "spot",
	// "capacity-block".
	Lifecycle string
	Tenancy   string // default, dedicated or host
	HostID    string
	AZ        string
	SubnetID  string
	VPCID     string
	PrivateIP string
	ImageID   string
	// ENIs lists the attached network interfaces, the primary first.
	ENIs []string
	// Volumes lists the attached volumes.
	Volumes        []string
	SecurityGroups []string
	Tags           map[string]string
	// ASG is the Auto Scaling group the instance belongs to, if any, and
	// LaunchTemplate* what it was launched from (Version is a number).
	ASG                   string
	LaunchTemplateID      string
	LaunchTemplateName    string
	LaunchTemplateVersion string
	LaunchConfiguration   string
	LaunchTime            time.Time
	ReservationID         string
	// WarmState is the lifecycle state of an instance in its group's warm
	// pool (Warmed:Pending, Warmed:Stopped...; see warmpool.go), "" for
	// one that is not: a warm instance is no member of the group.
	WarmState string
}

func (i *Instance) clone() Instance {
	out := *i
	out.ENIs = slices.Clone(i.ENIs)
	out.Volumes = slices.Clone(i.Volumes)
	out.SecurityGroups = slices.Clone(i.SecurityGroups)
	out.Tags = maps.Clone(i.Tags)
	return out
}

var stateCodes = map[string]int{
	"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80,
}

// InstanceSpec describes an instance to create.
type InstanceSpec struct {
	Type string
	// Subnet places the instance; without it, AZ picks the zone's first
	// subnet with a free address, or the default VPC's subnet of the zone.
	Subnet string
	AZ     string
	State  string // default running
	// Lifecycle: empty (on-demand), "spot" or "capacity-block".
	Lifecycle string
	// Tenancy: default, dedicated or host; HostID implies host.
	Tenancy string
	HostID  string
	Tags    map[string]string
	// SecondaryIPs adds addresses to the primary ENI.
	SecondaryIPs   int
	ImageID        string
	SecurityGroups []string
	LaunchTime     time.Time
}

// AddInstance creates an instance with its primary ENI (unless terminated).
func (a *Account) AddInstance(spec InstanceSpec) (Instance, error) {
	a.lock()
	defer a.unlock()
	inst, aerr := a.addInstance(spec)
	if aerr != nil {
		return Instance{}, aerr
	}
	return inst.clone(), nil
}

func (a *Account) pickSubnet(subnetID, az string) (*subnet, *apiError) {
	if subnetID != "" {
		s := a.subnets[subnetID]
		if s == nil {
			return nil, errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
		}
		if az != "" && az != s.AZ {
			return nil, errf(400, "InvalidParameterCombination", "Subnet %s is in %s, not %s", s.ID, s.AZ, az)
		}
		return s, nil
	}
	if az == "" {
		az = a.Region + "a"
	}
	for _, id := range slices.Sorted(maps.Keys(a.subnets)) {
		if s := a.subnets[id]; s.AZ == az && s.free() > 0 {
			return s, nil
		}
	}
	return a.defaultSubnet(az)
}

func (a *Account) addInstance(spec InstanceSpec) (*Instance, *apiError) {
	t, ok := a.types[spec.Type]
	if !ok {
		return nil, errf(400, "InvalidParameterValue", "Invalid value '%s' for InstanceType.", spec.Type)
	}
	s, aerr := a.pickSubnet(spec.Subnet, spec.AZ)
	if aerr != nil {
		return nil, aerr
	}
	if spec.SecondaryIPs+1 > int(t.IPv4PerENI) {
		return nil, errf(400, "PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit of %d for instance type %s.", t.IPv4PerENI, t.Name)
	}
	state := spec.State
	if state == "" {
		state = "running"
	}
	if _, ok := stateCodes[state]; !ok {
		return nil, errf(400, "InvalidParameterValue", "Invalid instance state '%s'", state)
	}
	tenancy := spec.Tenancy
	if spec.HostID != "" {
		tenancy = "host"
	}
	if tenancy == "" {
		tenancy = "default"
	}
	var host *Host
	if tenancy == "host" {
		if host, aerr = a.pickHost(spec.HostID, t, s.AZ); aerr != nil {
			return nil, aerr
		}
	}
	img := spec.ImageID
	if img == "" {
		img = "ami-0fa4e0f1ce0f1ce00"
	}
	lt := spec.LaunchTime
	if lt.IsZero() {
		lt = a.now()
	}
	inst := &Instance{
		ID: a.newID("i"), Type: t.Name, State: state, Lifecycle: spec.Lifecycle, Tenancy: tenancy,
		AZ: s.AZ, SubnetID: s.ID, VPCID: s.VPCID, ImageID: img, Tags: maps.Clone(spec.Tags),
		SecurityGroups: slices.Clone(spec.SecurityGroups), LaunchTime: lt, ReservationID: a.newID("r"),
	}
	if len(inst.SecurityGroups) == 0 {
		for _, sg := range a.sgs {
			if sg.VPCID == s.VPCID && sg.Name == "default" {
				inst.SecurityGroups = []string{sg.ID}
			}
		}
	}
	if state != "terminated" {
		e, aerr := a.newENI(s, 1+spec.SecondaryIPs, "interface", "", nil)
		if aerr != nil {
			return nil, aerr
		}
		e.DeleteOnTermination, e.SecurityGroups = true, slices.Clone(inst.SecurityGroups)
		a.attach(e, inst, t.DefaultNetworkCard)
		inst.PrivateIP = e.PrivateIPs[0]
		if host != nil {
			inst.HostID = host.ID
			host.Instances = append(host.Instances, inst.ID)
		}
	}
	a.instances[inst.ID] = inst
	a.emit(a.onLaunch, inst)
	return inst, nil
}

// Instance returns an instance by id.
func (a *Account) Instance(id string) (Instance, bool) {
	a.lock()
	defer a.unlock()
	if i := a.instances[id]; i != nil {
		return i.clone(), true
	}
	return Instance{}, false
}

// Instances returns every instance, terminated ones included, sorted by id.
func (a *Account) Instances() []Instance {
	a.lock()
	defer a.unlock()
	var out []Instance
	for _, id := range slices.Sorted(maps.Keys(a.instances)) {
		out = append(out, a.instances[id].clone())
	}
	return out
}

// SetInstanceState sets an instance's state without side effects, e.g. to
// stop one; use TerminateInstance to terminate.
func (a *Account) SetInstanceState(id, state string) error {
	a.lock()
	defer a.unlock()
	inst := a.instances[id]
	if inst == nil {
		return errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	if _, ok := stateCodes[state]; !ok {
		return errf(400, "InvalidParameterValue", "Invalid instance state '%s'", state)
	}
	inst.State = state
	return nil
}

// TerminateInstance terminates an instance the way ec2:TerminateInstances
// does: shutting-down, then terminated after Timing.ShutdownDuration; its
// Auto Scaling group, if any, replaces it.
func (a *Account) TerminateInstance(id string) error {
	a.lock()
	defer a.unlock()
	inst := a.instances[id]
	if inst == nil {
		return errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	a.terminate(inst)
	return nil
}

// DeleteInstance makes an instance vanish from every listing at once (as a
// terminated instance does after about an hour), freeing what it held.
func (a *Account) DeleteInstance(id string) error {
	a.lock()
	defer a.unlock()
	inst := a.instances[id]
	if inst == nil {
		return errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	if inst.State != "terminated" {
		a.finishTerminate(inst)
	}
	delete(a.instances, id)
	return nil
}

func (a *Account) terminate(inst *Instance) {
	if inst.State == "shutting-down" || inst.State == "terminated" || a.hookTermination(inst) {
		return
	}
	a.cutTraffic(inst) // targets.go
	inst.State = "shutting-down"
	a.after(a.timing.ShutdownDuration, func() {
		if a.instances[inst.ID] == inst && inst.State == "shutting-down" {
			a.finishTerminate(inst)
		}
	})
	if inst.ASG != "" {
		if g := a.asgs[inst.ASG]; g != nil {
			a.reconcile(g)
		}
	}
}

// finishTerminate moves an instance to terminated and releases what AWS
// releases then: ENIs and volumes marked DeleteOnTermination are deleted,
// others detached; Elastic IPs are disassociated.
func (a *Account) finishTerminate(inst *Instance) {
	inst.State = "terminated"
	for _, id := range slices.Clone(inst.ENIs) {
		e := a.enis[id]
		if e.DeleteOnTermination {
			a.deleteENI(e)
		} else {
			e.InstanceID, e.Status, e.DeviceIndex = "", "available", 0
		}
	}
	inst.ENIs = nil
	for _, id := range inst.Volumes {
		v := a.volumes[id]
		if v == nil {
			continue
		}
		if v.DeleteOnTermination {
			delete(a.volumes, id)
		} else {
			v.InstanceID, v.Device, v.State = "", "", "available"
		}
	}
	inst.Volumes = nil
	if h := a.hosts[inst.HostID]; h != nil {
		h.Instances = slices.DeleteFunc(h.Instances, func(id string) bool { return id == inst.ID })
	}
	for _, c := range a.clbs {
		c.Instances = slices.DeleteFunc(c.Instances, func(id string) bool { return id == inst.ID })
	}
	a.emit(a.onTerminate, inst)
	if inst.ASG != "" {
		if g := a.asgs[inst.ASG]; g != nil {
			a.terminated(g, inst)
			a.reconcile(g)
		}
	}
}
