package awsfake

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// ---- VPCs and subnets ----

type vpc struct {
	ID      string
	CIDR    netip.Prefix
	Default bool
	Tags    map[string]string
}

// Subnet is a subnet as DescribeSubnets reports it.
type Subnet struct {
	ID           string
	VPCID        string
	AZ           string
	CIDR         string
	DefaultForAZ bool
	Tags         map[string]string
	// UsableIPs is 2^(32-prefix) - 5: AWS reserves the first four addresses
	// and the last one.
	UsableIPs int
	// AvailableIPs is UsableIPs minus the addresses ENIs hold.
	AvailableIPs int
}

type subnet struct {
	Subnet
	prefix netip.Prefix
	used   map[netip.Addr]string // address -> ENI id
	cursor int
	// reservations are the subnet's CIDR reservations (prefixes.go).
	reservations []*SubnetCIDRReservation
}

func (s *subnet) size() int   { return 1 << (32 - s.prefix.Bits()) }
func (s *subnet) usable() int { return s.size() - 5 }
func (s *subnet) free() int   { return s.usable() - len(s.used) }

func (s *subnet) snapshot() Subnet {
	out := s.Subnet
	out.Tags = maps.Clone(s.Tags)
	out.UsableIPs, out.AvailableIPs = s.usable(), s.free()
	return out
}

func addrAt(p netip.Prefix, i int) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n += uint32(i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// alloc takes the lowest free address at or after the cursor, wrapping once.
func (s *subnet) alloc(eni string) (netip.Addr, bool) {
	first, last := 4, s.size()-2
	if s.cursor < first || s.cursor > last {
		s.cursor = first
	}
	for n := 0; n <= last-first; n++ {
		i := s.cursor + n
		if i > last {
			i -= last - first + 1
		}
		ip := addrAt(s.prefix, i)
		if _, taken := s.used[ip]; !taken && s.reservedFor(ip, false) == nil {
			s.used[ip] = eni
			s.cursor = i + 1
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func (s *subnet) release(ip string) {
	if addr, err := netip.ParseAddr(ip); err == nil {
		delete(s.used, addr)
	}
}

// AddVPC creates a VPC with its default security group and returns its id.
func (a *Account) AddVPC(cidr string, tags map[string]string) (string, error) {
	a.lock()
	defer a.unlock()
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p != p.Masked() || p.Bits() < 16 || p.Bits() > 28 {
		return "", errf(400, "InvalidVpc.Range", "The CIDR '%s' is invalid.", cidr)
	}
	return a.addVPC(p, false, tags).ID, nil
}

func (a *Account) addVPC(p netip.Prefix, def bool, tags map[string]string) *vpc {
	v := &vpc{ID: a.newID("vpc"), CIDR: p, Default: def, Tags: maps.Clone(tags)}
	a.vpcs[v.ID] = v
	sg := &SecurityGroup{ID: a.newID("sg"), Name: "default", Description: "default VPC security group", VPCID: v.ID}
	a.sgs[sg.ID] = sg
	return v
}

func (a *Account) defaultVPC() *vpc {
	for _, v := range a.vpcs {
		if v.Default {
			return v
		}
	}
	return a.addVPC(netip.MustParsePrefix("172.31.0.0/16"), true, nil)
}

// defaultSubnet returns the default VPC's subnet of zone az, creating it
// (172.31.16k.0/20 for the zone's k-th letter) as AWS's default VPC has one.
func (a *Account) defaultSubnet(az string) (*subnet, *apiError) {
	v := a.defaultVPC()
	for _, s := range a.subnets {
		if s.VPCID == v.ID && s.AZ == az && s.DefaultForAZ {
			return s, nil
		}
	}
	k := 0
	if az != "" {
		k = int(az[len(az)-1]-'a') & 0xf
	}
	p := netip.MustParsePrefix(fmt.Sprintf("172.31.%d.0/20", 16*k))
	return a.addSubnet(v, p, az, true, nil)
}

// SubnetSpec describes a subnet to create.
type SubnetSpec struct {
	// VPC is the VPC id; empty picks the VPC whose CIDR holds the subnet's,
	// creating a /16 VPC around it when there is none.
	VPC  string
	CIDR string
	AZ   string // defaults to the region's zone "a"
	Tags map[string]string
}

// AddSubnet creates a subnet.
func (a *Account) AddSubnet(spec SubnetSpec) (Subnet, error) {
	a.lock()
	defer a.unlock()
	p, err := netip.ParsePrefix(spec.CIDR)
	if err != nil || !p.Addr().Is4() || p != p.Masked() || p.Bits() < 16 || p.Bits() > 28 {
		return Subnet{}, errf(400, "InvalidSubnet.Range", "The CIDR '%s' is invalid.", spec.CIDR)
	}
	var v *vpc
	if spec.VPC != "" {
		if v = a.vpcs[spec.VPC]; v == nil {
			return Subnet{}, errf(400, "InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", spec.VPC)
		}
	} else {
		for _, id := range slices.Sorted(maps.Keys(a.vpcs)) {
			if c := a.vpcs[id].CIDR; c.Contains(p.Addr()) && c.Bits() <= p.Bits() {
				v = a.vpcs[id]
				break
			}
		}
		if v == nil {
			v = a.addVPC(netip.PrefixFrom(p.Addr(), 16).Masked(), false, nil)
		}
	}
	az := spec.AZ
	if az == "" {
		az = a.Region + "a"
	}
	s, aerr := a.addSubnet(v, p, az, false, spec.Tags)
	if aerr != nil {
		return Subnet{}, aerr
	}
	return s.snapshot(), nil
}

func (a *Account) addSubnet(v *vpc, p netip.Prefix, az string, def bool, tags map[string]string) (*subnet, *apiError) {
	if !v.CIDR.Contains(p.Addr()) || v.CIDR.Bits() > p.Bits() {
		return nil, errf(400, "InvalidSubnet.Range", "The CIDR '%s' is invalid for VPC %s.", p, v.ID)
	}
	for _, s := range a.subnets {
		if s.VPCID == v.ID && s.prefix.Overlaps(p) {
			return nil, errf(400, "InvalidSubnet.Conflict", "The CIDR '%s' conflicts with another subnet", p)
		}
	}
	s := &subnet{
		Subnet: Subnet{ID: a.newID("subnet"), VPCID: v.ID, AZ: az, CIDR: p.String(), DefaultForAZ: def, Tags: maps.Clone(tags)},
		prefix: p, used: map[netip.Addr]string{},
	}
	a.subnets[s.ID] = s
	return s, nil
}

// Subnet returns a subnet by id.
func (a *Account) Subnet(id string) (Subnet, bool) {
	a.lock()
	defer a.unlock()
	if s := a.subnets[id]; s != nil {
		return s.snapshot(), true
	}
	return Subnet{}, false
}

// Subnets returns every subnet, sorted by id.
func (a *Account) Subnets() []Subnet {
	a.lock()
	defer a.unlock()
	var out []Subnet
	for _, id := range slices.Sorted(maps.Keys(a.subnets)) {
		out = append(out, a.subnets[id].snapshot())
	}
	return out
}

// DeleteSubnet deletes a subnet that no ENI uses, as AWS refuses otherwise.
func (a *Account) DeleteSubnet(id string) error {
	a.lock()
	defer a.unlock()
	s := a.subnets[id]
	if s == nil {
		return errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	}
	if len(s.used) > 0 {
		return errf(400, "DependencyViolation", "The subnet '%s' has dependencies and cannot be deleted.", id)
	}
	delete(a.subnets, id)
	return nil
}

// ---- ENIs ----

// ENI is a network interface as DescribeNetworkInterfaces reports it.
type ENI struct {
	ID       string
	SubnetID string
	VPCID    string
	AZ       string
	// PrivateIPs holds the primary address first, then the secondary ones.
	PrivateIPs []string
	// IPv4Prefixes are the /28 prefixes delegated to the ENI (prefixes.go).
	IPv4Prefixes     []string
	InstanceID       string
	DeviceIndex      int32
	NetworkCardIndex int32
	Status           string // in-use or available
	// InterfaceType is EC2's: interface, nat_gateway, network_load_balancer...
	InterfaceType       string
	Description         string
	RequesterManaged    bool
	DeleteOnTermination bool
	SecurityGroups      []string
	Tags                map[string]string
	MAC                 string
}

func (e *ENI) clone() ENI {
	out := *e
	out.PrivateIPs = slices.Clone(e.PrivateIPs)
	out.IPv4Prefixes = slices.Clone(e.IPv4Prefixes)
	out.SecurityGroups = slices.Clone(e.SecurityGroups)
	out.Tags = maps.Clone(e.Tags)
	return out
}

// ENISpec describes a network interface to create, as the VPC CNI does.
type ENISpec struct {
	Subnet string
	// Instance, when set, attaches the ENI (next free device index) on
	// NetworkCard; the instance type's ENI limits apply.
	Instance     string
	NetworkCard  int32
	SecondaryIPs int
	// PrivateIPs, when set, are the ENI's addresses (primary first) instead
	// of the lowest free ones; SecondaryIPs is then ignored.
	PrivateIPs []string
	// IPv4Prefixes is the number of /28 prefixes to delegate to the ENI, as
	// the VPC CNI asks with prefix delegation (prefixes.go).
	IPv4Prefixes     int
	Description      string
	InterfaceType    string // default "interface"
	RequesterManaged bool
	Tags             map[string]string
}

// AddENI creates a network interface holding 1+SecondaryIPs addresses of its
// subnet.
func (a *Account) AddENI(spec ENISpec) (ENI, error) {
	a.lock()
	defer a.unlock()
	s := a.subnets[spec.Subnet]
	if s == nil {
		return ENI{}, errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", spec.Subnet)
	}
	var inst *Instance
	if spec.Instance != "" {
		if inst = a.instances[spec.Instance]; inst == nil || inst.State == "terminated" {
			return ENI{}, errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", spec.Instance)
		}
		if inst.AZ != s.AZ {
			return ENI{}, errf(400, "InvalidParameterCombination", "The ENI and the instance %s are in different availability zones.", inst.ID)
		}
		if aerr := a.checkAttach(inst, spec.NetworkCard, specAddrs(spec)+spec.IPv4Prefixes); aerr != nil {
			return ENI{}, aerr
		}
	}
	e, aerr := a.newENIFromSpec(s, spec)
	if aerr != nil {
		return ENI{}, aerr
	}
	e.RequesterManaged = spec.RequesterManaged
	if inst != nil {
		a.attach(e, inst, spec.NetworkCard)
		e.DeleteOnTermination = true
	}
	return e.clone(), nil
}

func (a *Account) newENI(s *subnet, ips int, itype, desc string, tags map[string]string) (*ENI, *apiError) {
	if s.free() < ips {
		return nil, errf(400, "InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", s.ID)
	}
	if itype == "" {
		itype = "interface"
	}
	e := &ENI{
		ID: a.newID("eni"), SubnetID: s.ID, VPCID: s.VPCID, AZ: s.AZ, Status: "available",
		InterfaceType: itype, Description: desc, Tags: maps.Clone(tags),
	}
	n := a.seq["eni"]
	e.MAC = fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", a.salt&0xff, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	for range ips {
		ip, ok := s.alloc(e.ID) // fails only when reservations hold the rest
		if !ok {
			break
		}
		e.PrivateIPs = append(e.PrivateIPs, ip.String())
	}
	a.enis[e.ID] = e
	return e, nil
}

// checkAttach enforces the instance type's limits: ENIs per card and in all,
// addresses per ENI.
func (a *Account) checkAttach(inst *Instance, card int32, ips int) *apiError {
	t := a.types[inst.Type]
	if ips > int(t.IPv4PerENI) {
		return errf(400, "PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit of %d for instance type %s.", t.IPv4PerENI, t.Name)
	}
	onCard := 0
	for _, id := range inst.ENIs {
		if a.enis[id].NetworkCardIndex == card {
			onCard++
		}
	}
	if len(inst.ENIs) >= int(t.MaxENIs) || onCard >= int(t.cardMaxENIs(card)) {
		return errf(400, "AttachmentLimitExceeded", "Interface count %d exceeds the limit for %s", len(inst.ENIs)+1, t.Name)
	}
	return nil
}

func (a *Account) attach(e *ENI, inst *Instance, card int32) {
	used := map[int32]bool{}
	for _, id := range inst.ENIs {
		used[a.enis[id].DeviceIndex] = true
	}
	var dev int32
	for used[dev] {
		dev++
	}
	e.InstanceID, e.DeviceIndex, e.NetworkCardIndex, e.Status = inst.ID, dev, card, "in-use"
	inst.ENIs = append(inst.ENIs, e.ID)
}

// deleteENI frees the ENI's addresses and detaches it.
func (a *Account) deleteENI(e *ENI) {
	if s := a.subnets[e.SubnetID]; s != nil {
		for _, ip := range e.PrivateIPs {
			s.release(ip)
		}
		s.releasePrefixes(e.IPv4Prefixes)
	}
	if inst := a.instances[e.InstanceID]; inst != nil {
		inst.ENIs = slices.DeleteFunc(inst.ENIs, func(id string) bool { return id == e.ID })
	}
	for _, ad := range a.addresses {
		if ad.ENIID == e.ID {
			ad.InstanceID, ad.ENIID, ad.PrivateIP, ad.AssociationID = "", "", "", ""
		}
	}
	delete(a.enis, e.ID)
}

// DeleteENI deletes a network interface, freeing its addresses.
func (a *Account) DeleteENI(id string) error {
	a.lock()
	defer a.unlock()
	e := a.enis[id]
	if e == nil {
		return errf(400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
	}
	a.deleteENI(e)
	return nil
}

// ENIs returns every network interface, sorted by id.
func (a *Account) ENIs() []ENI {
	a.lock()
	defer a.unlock()
	var out []ENI
	for _, id := range slices.Sorted(maps.Keys(a.enis)) {
		out = append(out, a.enis[id].clone())
	}
	return out
}
