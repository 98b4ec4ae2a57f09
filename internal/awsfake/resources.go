package awsfake

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The fixtures of everything that is not a subnet, an ENI or an instance.

// ---- volumes and snapshots ----

// Volume is an EBS volume as DescribeVolumes reports it.
type Volume struct {
	ID                  string
	Type                string // gp2, gp3, io1, io2, st1, sc1, standard
	SizeGiB             int32
	Iops                int32
	AZ                  string
	State               string // in-use or available
	InstanceID          string
	Device              string
	DeleteOnTermination bool
	SnapshotID          string
	Encrypted           bool
	CreateTime          time.Time
	Tags                map[string]string
}

// VolumeSpec describes a volume to create.
type VolumeSpec struct {
	Type    string // default gp3
	SizeGiB int32
	Iops    int32
	// AZ defaults to the instance's zone, or the region's zone "a".
	AZ string
	// Instance attaches the volume at Device.
	Instance            string
	Device              string
	DeleteOnTermination bool
	Tags                map[string]string
}

// AddVolume creates an EBS volume.
func (a *Account) AddVolume(spec VolumeSpec) (Volume, error) {
	a.lock()
	defer a.unlock()
	v, aerr := a.addVolume(spec)
	if aerr != nil {
		return Volume{}, aerr
	}
	out := *v
	out.Tags = maps.Clone(v.Tags)
	return out, nil
}

func (a *Account) addVolume(spec VolumeSpec) (*Volume, *apiError) {
	if spec.Type == "" {
		spec.Type = "gp3"
	}
	if spec.SizeGiB <= 0 {
		return nil, errf(400, "InvalidParameterValue", "The volume size is invalid: %d", spec.SizeGiB)
	}
	v := &Volume{
		ID: a.newID("vol"), Type: spec.Type, SizeGiB: spec.SizeGiB, Iops: spec.Iops, AZ: spec.AZ,
		State: "available", CreateTime: a.now(), Tags: maps.Clone(spec.Tags),
	}
	if spec.Instance != "" {
		inst := a.instances[spec.Instance]
		if inst == nil || inst.State == "terminated" {
			return nil, errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", spec.Instance)
		}
		if v.AZ == "" {
			v.AZ = inst.AZ
		}
		if v.AZ != inst.AZ {
			return nil, errf(400, "InvalidVolume.ZoneMismatch", "The volume is not in the same availability zone as instance %s", inst.ID)
		}
		dev := spec.Device
		if dev == "" {
			dev = fmt.Sprintf("/dev/xvd%c", 'a'+len(inst.Volumes))
		}
		v.InstanceID, v.Device, v.State, v.DeleteOnTermination = inst.ID, dev, "in-use", spec.DeleteOnTermination
		inst.Volumes = append(inst.Volumes, v.ID)
	}
	if v.AZ == "" {
		v.AZ = a.Region + "a"
	}
	a.volumes[v.ID] = v
	return v, nil
}

// Volumes returns every volume, sorted by id.
func (a *Account) Volumes() []Volume {
	a.lock()
	defer a.unlock()
	var out []Volume
	for _, id := range slices.Sorted(maps.Keys(a.volumes)) {
		v := *a.volumes[id]
		v.Tags = maps.Clone(v.Tags)
		out = append(out, v)
	}
	return out
}

// DeleteVolume deletes a volume, detaching it first.
func (a *Account) DeleteVolume(id string) error {
	a.lock()
	defer a.unlock()
	v := a.volumes[id]
	if v == nil {
		return errf(400, "InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	if inst := a.instances[v.InstanceID]; inst != nil {
		inst.Volumes = slices.DeleteFunc(inst.Volumes, func(x string) bool { return x == id })
	}
	delete(a.volumes, id)
	return nil
}

// Snapshot is an EBS snapshot as DescribeSnapshots reports it.
type Snapshot struct {
	ID          string
	VolumeID    string
	SizeGiB     int32
	OwnerID     string
	OwnerAlias  string
	State       string
	Description string
	StartTime   time.Time
	Tags        map[string]string
}

// SnapshotSpec describes a snapshot to create.
type SnapshotSpec struct {
	Volume  string
	SizeGiB int32 // defaults to the volume's size
	// Owner defaults to this account; "amazon" or another account id makes
	// a snapshot that only DescribeSnapshots without OwnerIds=self lists.
	Owner       string
	Description string
	Tags        map[string]string
}

// AddSnapshot creates a completed snapshot.
func (a *Account) AddSnapshot(spec SnapshotSpec) (Snapshot, error) {
	a.lock()
	defer a.unlock()
	size := spec.SizeGiB
	if v := a.volumes[spec.Volume]; v != nil && size == 0 {
		size = v.SizeGiB
	}
	if size <= 0 {
		return Snapshot{}, errf(400, "InvalidParameterValue", "snapshot %q needs a size or an existing volume", spec.Description)
	}
	s := &Snapshot{
		ID: a.newID("snap"), VolumeID: spec.Volume, SizeGiB: size, OwnerID: a.ID, State: "completed",
		Description: spec.Description, StartTime: a.now(), Tags: maps.Clone(spec.Tags),
	}
	switch {
	case spec.Owner == "amazon":
		s.OwnerID, s.OwnerAlias = "137112412989", "amazon"
	case spec.Owner != "":
		s.OwnerID = spec.Owner
	}
	a.snapshots[s.ID] = s
	out := *s
	out.Tags = maps.Clone(s.Tags)
	return out, nil
}

// DeleteSnapshot deletes a snapshot.
func (a *Account) DeleteSnapshot(id string) error {
	a.lock()
	defer a.unlock()
	if a.snapshots[id] == nil {
		return errf(400, "InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
	}
	delete(a.snapshots, id)
	return nil
}

// ---- security groups, addresses, NAT gateways, hosts ----

// SecurityGroup is a VPC security group.
type SecurityGroup struct {
	ID          string
	Name        string
	Description string
	VPCID       string
	Tags        map[string]string
}

// AddSecurityGroup creates a security group in a VPC (the default VPC when
// vpcID is empty).
func (a *Account) AddSecurityGroup(vpcID, name string, tags map[string]string) (SecurityGroup, error) {
	a.lock()
	defer a.unlock()
	v := a.vpcs[vpcID]
	if vpcID == "" {
		v = a.defaultVPC()
	}
	if v == nil {
		return SecurityGroup{}, errf(400, "InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpcID)
	}
	for _, sg := range a.sgs {
		if sg.VPCID == v.ID && sg.Name == name {
			return SecurityGroup{}, errf(400, "InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, v.ID)
		}
	}
	sg := &SecurityGroup{ID: a.newID("sg"), Name: name, Description: name, VPCID: v.ID, Tags: maps.Clone(tags)}
	a.sgs[sg.ID] = sg
	out := *sg
	out.Tags = maps.Clone(sg.Tags)
	return out, nil
}

// DeleteSecurityGroup deletes a security group.
func (a *Account) DeleteSecurityGroup(id string) error {
	a.lock()
	defer a.unlock()
	if a.sgs[id] == nil {
		return errf(400, "InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	delete(a.sgs, id)
	return nil
}

// Address is an Elastic IP address.
type Address struct {
	AllocationID  string
	PublicIP      string
	Domain        string
	InstanceID    string
	ENIID         string
	PrivateIP     string
	AssociationID string
	Tags          map[string]string
}

// AddAddress allocates an Elastic IP, associated with the instance's primary
// ENI when instanceID is set.
func (a *Account) AddAddress(instanceID string, tags map[string]string) (Address, error) {
	a.lock()
	defer a.unlock()
	ad := a.allocAddress(tags)
	if instanceID != "" {
		inst := a.instances[instanceID]
		if inst == nil || len(inst.ENIs) == 0 {
			delete(a.addresses, ad.AllocationID)
			return Address{}, errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", instanceID)
		}
		e := a.enis[inst.ENIs[0]]
		ad.InstanceID, ad.ENIID, ad.PrivateIP, ad.AssociationID = inst.ID, e.ID, e.PrivateIPs[0], a.newID("eipassoc")
	}
	out := *ad
	out.Tags = maps.Clone(ad.Tags)
	return out, nil
}

// allocAddress takes the next public address of 198.18.0.0/15, a range
// reserved for benchmarking and so never a real AWS address.
func (a *Account) allocAddress(tags map[string]string) *Address {
	a.pubIPs++
	n := uint32(198)<<24 | uint32(18)<<16 | a.pubIPs
	ip := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	ad := &Address{AllocationID: a.newID("eipalloc"), PublicIP: ip.String(), Domain: "vpc", Tags: maps.Clone(tags)}
	a.addresses[ad.AllocationID] = ad
	return ad
}

// DeleteAddress releases an Elastic IP.
func (a *Account) DeleteAddress(allocationID string) error {
	a.lock()
	defer a.unlock()
	if a.addresses[allocationID] == nil {
		return errf(400, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", allocationID)
	}
	delete(a.addresses, allocationID)
	return nil
}

// NATGateway is a NAT gateway; it holds an ENI in its subnet and, when
// public, an Elastic IP.
type NATGateway struct {
	ID               string
	SubnetID         string
	VPCID            string
	State            string
	ConnectivityType string // public or private
	ENIID            string
	PrivateIP        string
	AllocationID     string
	PublicIP         string
	CreateTime       time.Time
	Tags             map[string]string
}

// AddNATGateway creates an available NAT gateway in a subnet.
func (a *Account) AddNATGateway(subnetID string, private bool, tags map[string]string) (NATGateway, error) {
	a.lock()
	defer a.unlock()
	s := a.subnets[subnetID]
	if s == nil {
		return NATGateway{}, errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
	}
	n := &NATGateway{ID: a.newID("nat"), SubnetID: s.ID, VPCID: s.VPCID, State: "available", ConnectivityType: "public", CreateTime: a.now(), Tags: maps.Clone(tags)}
	e, aerr := a.newENI(s, 1, "nat_gateway", "Interface for NAT Gateway "+n.ID, nil)
	if aerr != nil {
		return NATGateway{}, aerr
	}
	e.RequesterManaged, e.Status = true, "in-use"
	n.ENIID, n.PrivateIP = e.ID, e.PrivateIPs[0]
	if private {
		n.ConnectivityType = "private"
	} else {
		ad := a.allocAddress(nil)
		ad.ENIID, ad.PrivateIP, ad.AssociationID = e.ID, n.PrivateIP, a.newID("eipassoc")
		n.AllocationID, n.PublicIP = ad.AllocationID, ad.PublicIP
	}
	a.nats[n.ID] = n
	out := *n
	out.Tags = maps.Clone(n.Tags)
	return out, nil
}

// DeleteNATGateway deletes a NAT gateway with its ENI and Elastic IP.
func (a *Account) DeleteNATGateway(id string) error {
	a.lock()
	defer a.unlock()
	n := a.nats[id]
	if n == nil {
		return errf(400, "NatGatewayNotFound", "The NAT gateway '%s' was not found", id)
	}
	if e := a.enis[n.ENIID]; e != nil {
		a.deleteENI(e)
	}
	delete(a.addresses, n.AllocationID)
	delete(a.nats, id)
	return nil
}

// Host is a Dedicated Host.
type Host struct {
	ID             string
	AZ             string
	InstanceType   string
	State          string
	TotalVCPUs     int32
	Sockets        int32
	Instances      []string
	AllocationTime time.Time
	Tags           map[string]string
}

// AddHost allocates a Dedicated Host for one instance type; totalVCPUs zero
// means 96 (or the type's own count if larger).
func (a *Account) AddHost(instanceType, az string, totalVCPUs int32, tags map[string]string) (Host, error) {
	a.lock()
	defer a.unlock()
	t, ok := a.types[instanceType]
	if !ok {
		return Host{}, errf(400, "InvalidParameterValue", "Invalid value '%s' for InstanceType.", instanceType)
	}
	if az == "" {
		az = a.Region + "a"
	}
	if totalVCPUs == 0 {
		totalVCPUs = max(96, t.VCPUs)
	}
	h := &Host{ID: a.newID("h"), AZ: az, InstanceType: t.Name, State: "available", TotalVCPUs: totalVCPUs, Sockets: 2, AllocationTime: a.now(), Tags: maps.Clone(tags)}
	a.hosts[h.ID] = h
	out := *h
	out.Tags = maps.Clone(h.Tags)
	return out, nil
}

func (a *Account) hostUsedVCPUs(h *Host) int32 {
	var used int32
	for _, id := range h.Instances {
		if i := a.instances[id]; i != nil {
			used += a.types[i.Type].VCPUs
		}
	}
	return used
}

func (a *Account) pickHost(id string, t InstanceType, az string) (*Host, *apiError) {
	fits := func(h *Host) bool {
		return h.AZ == az && h.InstanceType == t.Name && h.TotalVCPUs-a.hostUsedVCPUs(h) >= t.VCPUs
	}
	if id != "" {
		h := a.hosts[id]
		if h == nil {
			return nil, errf(400, "InvalidHostID.NotFound", "The host ID '%s' does not exist", id)
		}
		if !fits(h) {
			return nil, errf(400, "InsufficientHostCapacity", "Host %s has no capacity for %s in %s", id, t.Name, az)
		}
		return h, nil
	}
	for _, hid := range slices.Sorted(maps.Keys(a.hosts)) {
		if fits(a.hosts[hid]) {
			return a.hosts[hid], nil
		}
	}
	return nil, errf(400, "InsufficientHostCapacity", "No Dedicated Host has capacity for %s in %s", t.Name, az)
}

// DeleteHost releases a Dedicated Host that runs no instance.
func (a *Account) DeleteHost(id string) error {
	a.lock()
	defer a.unlock()
	h := a.hosts[id]
	if h == nil {
		return errf(400, "InvalidHostID.NotFound", "The host ID '%s' does not exist", id)
	}
	if len(h.Instances) > 0 {
		return errf(400, "InvalidHost.InUse", "Host %s still has instances", id)
	}
	delete(a.hosts, id)
	return nil
}

// ---- launch templates and configurations ----

// LaunchTemplate is an EC2 launch template with its versions.
type LaunchTemplate struct {
	ID             string
	Name           string
	DefaultVersion int64
	LatestVersion  int64
	CreateTime     time.Time
	Tags           map[string]string
	Versions       []LaunchTemplateVersion
}

// LaunchTemplateVersion is one version of a launch template.
type LaunchTemplateVersion struct {
	Number      int64
	Description string
	CreateTime  time.Time
	Data        LaunchTemplateData
}

// LaunchTemplateData is the part of a launch template's data an instance
// launch uses. The AMI's own root volume is not modelled: list every volume
// an instance should get in BlockDevices.
type LaunchTemplateData struct {
	InstanceType     string
	ImageID          string
	Spot             bool // InstanceMarketOptions.MarketType spot
	BlockDevices     []BlockDevice
	SecurityGroupIDs []string
}

// BlockDevice is a block device mapping of an EBS volume.
type BlockDevice struct {
	DeviceName          string
	VolumeType          string
	SizeGiB             int32
	Iops                int32
	DeleteOnTermination bool
}

func (d LaunchTemplateData) clone() LaunchTemplateData {
	d.BlockDevices = slices.Clone(d.BlockDevices)
	d.SecurityGroupIDs = slices.Clone(d.SecurityGroupIDs)
	return d
}

func (lt *LaunchTemplate) clone() LaunchTemplate {
	out := *lt
	out.Tags = maps.Clone(lt.Tags)
	out.Versions = make([]LaunchTemplateVersion, len(lt.Versions))
	for i, v := range lt.Versions {
		v.Data = v.Data.clone()
		out.Versions[i] = v
	}
	return out
}

// version resolves "$Default", "$Latest" or a number.
func (lt *LaunchTemplate) version(v string) (*LaunchTemplateVersion, bool) {
	var n int64
	switch v {
	case "", "$Default":
		n = lt.DefaultVersion
	case "$Latest":
		n = lt.LatestVersion
	default:
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
			return nil, false
		}
	}
	for i := range lt.Versions {
		if lt.Versions[i].Number == n {
			return &lt.Versions[i], true
		}
	}
	return nil, false
}

// AddLaunchTemplate creates a launch template whose version 1 holds data.
func (a *Account) AddLaunchTemplate(name string, data LaunchTemplateData, tags map[string]string) (LaunchTemplate, error) {
	a.lock()
	defer a.unlock()
	if a.ltByName(name) != nil {
		return LaunchTemplate{}, errf(400, "InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
	}
	if _, ok := a.types[data.InstanceType]; data.InstanceType != "" && !ok {
		return LaunchTemplate{}, errf(400, "InvalidParameterValue", "Invalid value '%s' for InstanceType.", data.InstanceType)
	}
	now := a.now()
	lt := &LaunchTemplate{
		ID: a.newID("lt"), Name: name, DefaultVersion: 1, LatestVersion: 1, CreateTime: now, Tags: maps.Clone(tags),
		Versions: []LaunchTemplateVersion{{Number: 1, CreateTime: now, Data: data.clone()}},
	}
	a.lts[lt.ID] = lt
	return lt.clone(), nil
}

// AddLaunchTemplateVersion adds a version to the template named or with id
// idOrName and returns its number; makeDefault also makes it the default.
func (a *Account) AddLaunchTemplateVersion(idOrName string, data LaunchTemplateData, makeDefault bool) (int64, error) {
	a.lock()
	defer a.unlock()
	lt := a.lts[idOrName]
	if lt == nil {
		lt = a.ltByName(idOrName)
	}
	if lt == nil {
		return 0, errf(400, "InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", idOrName)
	}
	lt.LatestVersion++
	lt.Versions = append(lt.Versions, LaunchTemplateVersion{Number: lt.LatestVersion, CreateTime: a.now(), Data: data.clone()})
	if makeDefault {
		lt.DefaultVersion = lt.LatestVersion
	}
	return lt.LatestVersion, nil
}

func (a *Account) ltByName(name string) *LaunchTemplate {
	for _, lt := range a.lts {
		if lt.Name == name {
			return lt
		}
	}
	return nil
}

// DeleteLaunchTemplate deletes a launch template by id or name.
func (a *Account) DeleteLaunchTemplate(idOrName string) error {
	a.lock()
	defer a.unlock()
	lt := a.lts[idOrName]
	if lt == nil {
		lt = a.ltByName(idOrName)
	}
	if lt == nil {
		return errf(400, "InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", idOrName)
	}
	delete(a.lts, lt.ID)
	return nil
}

// LaunchConfiguration is an Auto Scaling launch configuration.
type LaunchConfiguration struct {
	Name         string
	ARN          string
	InstanceType string
	ImageID      string
	SpotPrice    string // set for spot
	Tenancy      string
	BlockDevices []BlockDevice
	CreatedTime  time.Time
}

// AddLaunchConfiguration creates a launch configuration; ARN and
// CreatedTime are filled in.
func (a *Account) AddLaunchConfiguration(lc LaunchConfiguration) (LaunchConfiguration, error) {
	a.lock()
	defer a.unlock()
	if a.lcs[lc.Name] != nil {
		return LaunchConfiguration{}, errf(400, "AlreadyExists", "Launch Configuration by this name already exists - A launch configuration already exists with the name %s", lc.Name)
	}
	if _, ok := a.types[lc.InstanceType]; !ok {
		return LaunchConfiguration{}, errf(400, "ValidationError", "Invalid instance type %s", lc.InstanceType)
	}
	lc.ARN = a.arn("autoscaling", fmt.Sprintf("launchConfiguration:%s:launchConfigurationName/%s", uuidish(a.newID("lc")), lc.Name))
	lc.CreatedTime = a.now()
	if lc.ImageID == "" {
		lc.ImageID = "ami-0fa4e0f1ce0f1ce00"
	}
	lc.BlockDevices = slices.Clone(lc.BlockDevices)
	stored := lc
	a.lcs[lc.Name] = &stored
	return lc, nil
}

// DeleteLaunchConfiguration deletes a launch configuration.
func (a *Account) DeleteLaunchConfiguration(name string) error {
	a.lock()
	defer a.unlock()
	if a.lcs[name] == nil {
		return errf(400, "ValidationError", "Launch configuration name not found - %s", name)
	}
	delete(a.lcs, name)
	return nil
}

// uuidish turns an id into a UUID-shaped string for ARNs that carry one.
func uuidish(id string) string {
	_, hex, _ := strings.Cut(id, "-")
	hex = fmt.Sprintf("%032s", hex)
	return hex[0:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:32]
}

// ---- load balancers ----

// LoadBalancer is an ELBv2 load balancer (application, network, gateway).
// It holds one requester-managed ENI per subnet, as AWS's do.
type LoadBalancer struct {
	ARN            string
	Name           string
	Type           string // application, network or gateway
	Scheme         string // internet-facing or internal
	State          string
	VPCID          string
	DNSName        string
	SubnetIDs      []string
	AZs            []string
	SecurityGroups []string
	ENIs           []string
	CreatedTime    time.Time
}

// LoadBalancerSpec describes an ELBv2 load balancer to create.
type LoadBalancerSpec struct {
	Name           string
	Type           string // default application
	Scheme         string // default internet-facing
	Subnets        []string
	SecurityGroups []string
}

func (a *Account) subnetsOf(ids []string) ([]*subnet, *apiError) {
	var out []*subnet
	for _, id := range ids {
		s := a.subnets[id]
		if s == nil {
			return nil, errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		if len(out) > 0 && out[0].VPCID != s.VPCID {
			return nil, errf(400, "InvalidConfigurationRequest", "Subnets %s and %s are in different VPCs", out[0].ID, s.ID)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errf(400, "ValidationError", "At least one subnet must be specified")
	}
	return out, nil
}

// AddLoadBalancer creates an active ELBv2 load balancer.
func (a *Account) AddLoadBalancer(spec LoadBalancerSpec) (LoadBalancer, error) {
	a.lock()
	defer a.unlock()
	if spec.Type == "" {
		spec.Type = "application"
	}
	if spec.Scheme == "" {
		spec.Scheme = "internet-facing"
	}
	short := map[string]string{"application": "app", "network": "net", "gateway": "gwy"}[spec.Type]
	if short == "" {
		return LoadBalancer{}, errf(400, "ValidationError", "Invalid load balancer type %q", spec.Type)
	}
	for _, lb := range a.lbs {
		if lb.Name == spec.Name {
			return LoadBalancer{}, errf(400, "DuplicateLoadBalancerName", "A load balancer with the same name '%s' exists", spec.Name)
		}
	}
	subs, aerr := a.subnetsOf(spec.Subnets)
	if aerr != nil {
		return LoadBalancer{}, aerr
	}
	_, hex, _ := strings.Cut(a.newID("lb"), "-")
	hex = hex[1:]
	lb := &LoadBalancer{
		ARN:  a.arn("elasticloadbalancing", fmt.Sprintf("loadbalancer/%s/%s/%s", short, spec.Name, hex)),
		Name: spec.Name, Type: spec.Type, Scheme: spec.Scheme, State: "active", VPCID: subs[0].VPCID,
		DNSName:        fmt.Sprintf("%s-%s.%s.elb.amazonaws.com", spec.Name, hex[6:], a.Region),
		SecurityGroups: slices.Clone(spec.SecurityGroups), CreatedTime: a.now(),
	}
	if spec.Scheme == "internal" {
		lb.DNSName = "internal-" + lb.DNSName
	}
	itype := map[string]string{"application": "interface", "network": "network_load_balancer", "gateway": "gateway_load_balancer"}[spec.Type]
	for _, s := range subs {
		e, aerr := a.newENI(s, 1, itype, fmt.Sprintf("ELB %s/%s/%s", short, spec.Name, hex), nil)
		if aerr != nil {
			for _, id := range lb.ENIs {
				a.deleteENI(a.enis[id])
			}
			return LoadBalancer{}, aerr
		}
		e.RequesterManaged, e.Status = true, "in-use"
		lb.ENIs = append(lb.ENIs, e.ID)
		lb.SubnetIDs = append(lb.SubnetIDs, s.ID)
		lb.AZs = append(lb.AZs, s.AZ)
	}
	a.lbs[lb.ARN] = lb
	return lb.clone(), nil
}

func (lb *LoadBalancer) clone() LoadBalancer {
	out := *lb
	out.SubnetIDs, out.AZs = slices.Clone(lb.SubnetIDs), slices.Clone(lb.AZs)
	out.SecurityGroups, out.ENIs = slices.Clone(lb.SecurityGroups), slices.Clone(lb.ENIs)
	return out
}

// DeleteLoadBalancer deletes an ELBv2 load balancer by ARN or name, with its
// ENIs; its target groups stay, as in AWS.
func (a *Account) DeleteLoadBalancer(arnOrName string) error {
	a.lock()
	defer a.unlock()
	for arn, lb := range a.lbs {
		if arn == arnOrName || lb.Name == arnOrName {
			for _, id := range lb.ENIs {
				if e := a.enis[id]; e != nil {
					a.deleteENI(e)
				}
			}
			for _, tg := range a.tgs {
				tg.LoadBalancerARNs = slices.DeleteFunc(tg.LoadBalancerARNs, func(x string) bool { return x == arn })
			}
			delete(a.lbs, arn)
			return nil
		}
	}
	return errf(400, "LoadBalancerNotFound", "Load balancer '%s' not found", arnOrName)
}

// TargetGroup is an ELBv2 target group.
type TargetGroup struct {
	ARN              string
	Name             string
	Protocol         string
	Port             int32
	VPCID            string
	TargetType       string
	LoadBalancerARNs []string
}

// AddTargetGroup creates a target group; vpcID empty takes the first load
// balancer's VPC, or the default VPC.
func (a *Account) AddTargetGroup(tg TargetGroup) (TargetGroup, error) {
	a.lock()
	defer a.unlock()
	for _, arn := range tg.LoadBalancerARNs {
		lb := a.lbs[arn]
		if lb == nil {
			return TargetGroup{}, errf(400, "LoadBalancerNotFound", "Load balancer '%s' not found", arn)
		}
		if tg.VPCID == "" {
			tg.VPCID = lb.VPCID
		}
	}
	if tg.VPCID == "" {
		tg.VPCID = a.defaultVPC().ID
	}
	if tg.Protocol == "" {
		tg.Protocol = "HTTP"
	}
	if tg.Port == 0 {
		tg.Port = 80
	}
	if tg.TargetType == "" {
		tg.TargetType = "instance"
	}
	_, hex, _ := strings.Cut(a.newID("tg"), "-")
	tg.ARN = a.arn("elasticloadbalancing", fmt.Sprintf("targetgroup/%s/%s", tg.Name, hex[1:]))
	tg.LoadBalancerARNs = slices.Clone(tg.LoadBalancerARNs)
	stored := tg
	a.tgs[tg.ARN] = &stored
	return tg, nil
}

// DeleteTargetGroup deletes a target group by ARN or name.
func (a *Account) DeleteTargetGroup(arnOrName string) error {
	a.lock()
	defer a.unlock()
	for arn, tg := range a.tgs {
		if arn == arnOrName || tg.Name == arnOrName {
			delete(a.tgs, arn)
			return nil
		}
	}
	return errf(400, "TargetGroupNotFound", "Target group '%s' not found", arnOrName)
}

// ClassicLoadBalancer is an ELB (classic) load balancer in a VPC, holding one
// ENI per subnet.
type ClassicLoadBalancer struct {
	Name           string
	DNSName        string
	Scheme         string
	VPCID          string
	SubnetIDs      []string
	AZs            []string
	Instances      []string
	SecurityGroups []string
	ENIs           []string
	CreatedTime    time.Time
}

// AddClassicLoadBalancer creates a classic load balancer in subnets, with
// instances registered.
func (a *Account) AddClassicLoadBalancer(name string, subnets, instances []string) (ClassicLoadBalancer, error) {
	a.lock()
	defer a.unlock()
	if a.clbs[name] != nil {
		return ClassicLoadBalancer{}, errf(400, "DuplicateLoadBalancerName", "Load balancer name '%s' already exists", name)
	}
	subs, aerr := a.subnetsOf(subnets)
	if aerr != nil {
		return ClassicLoadBalancer{}, aerr
	}
	for _, id := range instances {
		if a.instances[id] == nil {
			return ClassicLoadBalancer{}, errf(400, "InvalidInstance", "The instance ID '%s' is not valid", id)
		}
	}
	_, hex, _ := strings.Cut(a.newID("elb"), "-")
	c := &ClassicLoadBalancer{
		Name: name, Scheme: "internet-facing", VPCID: subs[0].VPCID, Instances: slices.Clone(instances),
		DNSName: fmt.Sprintf("%s-%s.%s.elb.amazonaws.com", name, hex[8:], a.Region), CreatedTime: a.now(),
	}
	for _, s := range subs {
		e, aerr := a.newENI(s, 1, "interface", "ELB "+name, nil)
		if aerr != nil {
			for _, id := range c.ENIs {
				a.deleteENI(a.enis[id])
			}
			return ClassicLoadBalancer{}, aerr
		}
		e.RequesterManaged, e.Status = true, "in-use"
		c.ENIs = append(c.ENIs, e.ID)
		c.SubnetIDs = append(c.SubnetIDs, s.ID)
		c.AZs = append(c.AZs, s.AZ)
	}
	a.clbs[name] = c
	return c.clone(), nil
}

func (c *ClassicLoadBalancer) clone() ClassicLoadBalancer {
	out := *c
	out.SubnetIDs, out.AZs, out.Instances = slices.Clone(c.SubnetIDs), slices.Clone(c.AZs), slices.Clone(c.Instances)
	out.SecurityGroups, out.ENIs = slices.Clone(c.SecurityGroups), slices.Clone(c.ENIs)
	return out
}

// DeleteClassicLoadBalancer deletes a classic load balancer with its ENIs.
func (a *Account) DeleteClassicLoadBalancer(name string) error {
	a.lock()
	defer a.unlock()
	c := a.clbs[name]
	if c == nil {
		return errf(400, "LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
	}
	for _, id := range c.ENIs {
		if e := a.enis[id]; e != nil {
			a.deleteENI(e)
		}
	}
	delete(a.clbs, name)
	return nil
}

// ---- quotas ----

func quotaKey(service, code string) string { return service + "/" + code }

// SetQuota sets a quota's applied value (what ListServiceQuotas returns),
// creating the quota, with that value as its default too, if it is new.
func (a *Account) SetQuota(service, code, name string, value float64) {
	a.lock()
	defer a.unlock()
	q := a.quota(service, code, name, value)
	q.Value, q.Applied = value, true
}

// SetDefaultQuota sets a quota's AWS default value (what
// ListAWSDefaultServiceQuotas returns); a new quota is default-only.
func (a *Account) SetDefaultQuota(service, code, name string, value float64) {
	a.lock()
	defer a.unlock()
	_, existed := a.quotas[quotaKey(service, code)]
	q := a.quota(service, code, name, value)
	q.DefaultValue = value
	if !existed {
		q.Applied = false
	}
}

func (a *Account) quota(service, code, name string, value float64) *Quota {
	q := a.quotas[quotaKey(service, code)]
	if q == nil {
		sn := serviceNames[service]
		if sn == "" {
			sn = service
		}
		q = &Quota{ServiceCode: service, ServiceName: sn, QuotaCode: code, DefaultValue: value, Unit: "None", Adjustable: true}
		a.quotas[quotaKey(service, code)] = q
	}
	if name != "" {
		q.QuotaName = name
	}
	return q
}

// SetQuotaUsage sets the usage a quota utilization report shows for a quota.
func (a *Account) SetQuotaUsage(service, code string, usage float64) error {
	a.lock()
	defer a.unlock()
	q := a.quotas[quotaKey(service, code)]
	if q == nil {
		return errf(404, "NoSuchResourceException", "quota %s/%s does not exist", service, code)
	}
	q.Usage = &usage
	return nil
}

// ClearAppliedQuota leaves a quota to ListAWSDefaultServiceQuotas alone:
// ListServiceQuotas stops returning it.
func (a *Account) ClearAppliedQuota(service, code string) {
	a.lock()
	defer a.unlock()
	if q := a.quotas[quotaKey(service, code)]; q != nil {
		q.Applied = false
	}
}

// DeleteQuota removes a quota from both listings.
func (a *Account) DeleteQuota(service, code string) {
	a.lock()
	defer a.unlock()
	delete(a.quotas, quotaKey(service, code))
}

// Quotas returns every quota, sorted by service and code.
func (a *Account) Quotas() []Quota {
	a.lock()
	defer a.unlock()
	var out []Quota
	for _, k := range slices.Sorted(maps.Keys(a.quotas)) {
		out = append(out, *a.quotas[k])
	}
	return out
}
