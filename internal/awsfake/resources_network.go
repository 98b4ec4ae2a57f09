package awsfake

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

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
