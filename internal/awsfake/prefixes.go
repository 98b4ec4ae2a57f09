package awsfake

import (
	"maps"
	"net/netip"
	"slices"
)

// Prefix delegation and subnet CIDR reservations: what decides whether the
// VPC CNI with ENABLE_PREFIX_DELEGATION can get a /28 in a subnet.
//
// EC2 delegates IPv4 prefixes as aligned /28 blocks of the ENI's subnet
// whose 16 addresses are all free (CreateNetworkInterface and
// AssignPrivateIpAddresses with Ipv4PrefixCount); when no such block is
// left it fails with InsufficientCidrBlocks, however many scattered
// addresses the subnet still has. A delegated prefix's addresses are in use:
// they count against AvailableIpAddressCount like any assigned address.
//
// A subnet CIDR reservation keeps its range from EC2's automatic choice of
// single addresses. A reservation of type "prefix" is where EC2 delegates
// prefixes from (the fake takes its blocks first); one of type "explicit"
// only ever gives the addresses a caller names. The fake leaves
// AvailableIpAddressCount unchanged by reservations.

// prefixBits is the length of a delegated IPv4 prefix.
const prefixBits = 28

// SubnetCIDRReservation is a subnet CIDR reservation as
// GetSubnetCidrReservations reports it.
type SubnetCIDRReservation struct {
	ID       string
	SubnetID string
	CIDR     string
	// Type is "prefix" or "explicit".
	Type        string
	Description string
	Tags        map[string]string

	prefix netip.Prefix
}

// AddSubnetCIDRReservation reserves cidr (IPv4, inside the subnet, not
// overlapping another reservation) of type "prefix" or "explicit".
func (a *Account) AddSubnetCIDRReservation(subnetID, cidr, typ string, tags map[string]string) (SubnetCIDRReservation, error) {
	a.lock()
	defer a.unlock()
	s := a.subnets[subnetID]
	if s == nil {
		return SubnetCIDRReservation{}, errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnetID)
	}
	if typ != "prefix" && typ != "explicit" {
		return SubnetCIDRReservation{}, errf(400, "InvalidParameterValue", "Value (%s) for parameter reservationType is invalid.", typ)
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p != p.Masked() || !s.prefix.Contains(p.Addr()) || p.Bits() < s.prefix.Bits() {
		return SubnetCIDRReservation{}, errf(400, "InvalidParameterValue", "The CIDR '%s' is not within subnet %s (%s).", cidr, subnetID, s.CIDR)
	}
	for _, r := range s.reservations {
		if r.prefix.Overlaps(p) {
			return SubnetCIDRReservation{}, errf(400, "InvalidSubnetCidrReservation.Conflict", "The CIDR '%s' overlaps reservation %s.", cidr, r.ID)
		}
	}
	r := &SubnetCIDRReservation{ID: a.newID("scr"), SubnetID: subnetID, CIDR: p.String(), Type: typ, Tags: maps.Clone(tags), prefix: p}
	s.reservations = append(s.reservations, r)
	return r.clone(), nil
}

// DeleteSubnetCIDRReservation removes a reservation.
func (a *Account) DeleteSubnetCIDRReservation(id string) error {
	a.lock()
	defer a.unlock()
	for _, s := range a.subnets {
		for i, r := range s.reservations {
			if r.ID == id {
				s.reservations = slices.Delete(s.reservations, i, i+1)
				return nil
			}
		}
	}
	return errf(400, "InvalidSubnetCidrReservationID.NotFound", "The subnet CIDR reservation '%s' does not exist", id)
}

func (r *SubnetCIDRReservation) clone() SubnetCIDRReservation {
	out := *r
	out.Tags = maps.Clone(r.Tags)
	return out
}

// reservedFor returns the reservation that keeps ip from EC2's automatic
// choice: any reservation for a single address, an explicit one for a
// prefix.
func (s *subnet) reservedFor(ip netip.Addr, forPrefix bool) *SubnetCIDRReservation {
	for _, r := range s.reservations {
		if r.prefix.Contains(ip) && (!forPrefix || r.Type == "explicit") {
			return r
		}
	}
	return nil
}

// blockFree tells whether every address of the aligned /28 at p is usable
// (not one of the five AWS keeps), unused and not reserved against
// prefixes.
func (s *subnet) blockFree(p netip.Prefix) bool {
	first, last := addrAt(s.prefix, 3), addrAt(s.prefix, s.size()-1)
	ip := p.Addr()
	for range 1 << (32 - prefixBits) {
		if ip.Compare(first) <= 0 || ip == last {
			return false
		}
		if _, taken := s.used[ip]; taken || s.reservedFor(ip, true) != nil {
			return false
		}
		ip = ip.Next()
	}
	return true
}

// allocPrefix delegates the lowest free aligned /28, from a prefix
// reservation first.
func (s *subnet) allocPrefix(eni string) (netip.Prefix, bool) {
	if s.prefix.Bits() > prefixBits {
		return netip.Prefix{}, false
	}
	var candidates []netip.Prefix
	for _, r := range s.reservations {
		if r.Type == "prefix" && r.prefix.Bits() <= prefixBits {
			candidates = append(candidates, r.prefix)
		}
	}
	candidates = append(candidates, s.prefix)
	for _, c := range candidates {
		for i := 0; i < 1<<(32-c.Bits()); i += 1 << (32 - prefixBits) {
			p := netip.PrefixFrom(addrAt(c, i), prefixBits)
			if !s.blockFree(p) {
				continue
			}
			ip := p.Addr()
			for range 1 << (32 - prefixBits) {
				s.used[ip] = eni
				ip = ip.Next()
			}
			return p, true
		}
	}
	return netip.Prefix{}, false
}

func (s *subnet) releasePrefixes(prefixes []string) {
	for _, v := range prefixes {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			continue
		}
		ip := p.Addr()
		for range 1 << (32 - p.Bits()) {
			delete(s.used, ip)
			ip = ip.Next()
		}
	}
}

func specAddrs(spec ENISpec) int {
	if len(spec.PrivateIPs) > 0 {
		return len(spec.PrivateIPs)
	}
	return 1 + spec.SecondaryIPs
}

// newENIFromSpec creates an ENI with the spec's addresses (named or the
// lowest free ones) and prefixes, or fails without holding any: with
// InsufficientFreeAddressesInSubnet, InvalidIPAddress.InUse, or
// InsufficientCidrBlocks when no aligned /28 is free, as EC2 does.
func (a *Account) newENIFromSpec(s *subnet, spec ENISpec) (*ENI, *apiError) {
	var named []netip.Addr
	for _, v := range spec.PrivateIPs {
		ip, err := netip.ParseAddr(v)
		if err != nil || !s.prefix.Contains(ip) {
			return nil, errf(400, "InvalidParameterValue", "Address %s does not fall within the subnet's address range", v)
		}
		if ip.Compare(addrAt(s.prefix, 3)) <= 0 || ip == addrAt(s.prefix, s.size()-1) {
			return nil, errf(400, "InvalidParameterValue", "Address %s is reserved by AWS", v)
		}
		if _, taken := s.used[ip]; taken || slices.Contains(named, ip) {
			return nil, errf(400, "InvalidIPAddress.InUse", "The specified address %s is already in use.", v)
		}
		named = append(named, ip)
	}
	ips := specAddrs(spec)
	if len(named) > 0 {
		ips = 0 // newENI allocates none; the named ones are taken below
	}
	e, aerr := a.newENI(s, ips, spec.InterfaceType, spec.Description, spec.Tags)
	if aerr != nil {
		return nil, aerr
	}
	if len(e.PrivateIPs) < ips { // reservations left too few addresses
		a.deleteENI(e)
		return nil, errf(400, "InsufficientFreeAddressesInSubnet", "There are not enough free addresses in subnet '%s' to satisfy the requested number of instances.", s.ID)
	}
	for _, ip := range named {
		s.used[ip] = e.ID
		e.PrivateIPs = append(e.PrivateIPs, ip.String())
	}
	for range spec.IPv4Prefixes {
		p, ok := s.allocPrefix(e.ID)
		if !ok {
			a.deleteENI(e)
			return nil, errf(400, "InsufficientCidrBlocks", "There are not enough free cidr blocks in the specified subnet to satisfy the request.")
		}
		e.IPv4Prefixes = append(e.IPv4Prefixes, p.String())
	}
	return e, nil
}

// ---- GetSubnetCidrReservations ----

var reservationFilters = filterSet[*SubnetCIDRReservation]{
	fields: map[string]func(*SubnetCIDRReservation) []string{
		"reservationType": func(r *SubnetCIDRReservation) []string { return one(r.Type) },
		"subnet-id":       func(r *SubnetCIDRReservation) []string { return one(r.SubnetID) },
	},
	tags: func(r *SubnetCIDRReservation) map[string]string { return r.Tags },
}

// ec2GetSubnetCidrReservations lists one subnet's reservations (SubnetId is
// required), paged by MaxResults/NextToken; IPv6 reservations are never
// listed, as the fake has no IPv6.
func ec2GetSubnetCidrReservations(c *call) (any, *apiError) {
	a := c.acct
	a.lock()
	defer a.unlock()
	id := c.form.str("SubnetId")
	if id == "" {
		return nil, errf(400, "MissingParameter", "The request must contain the parameter SubnetId")
	}
	s := a.subnets[id]
	if s == nil {
		return nil, errf(400, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
	}
	page, next, aerr := describe(c, slices.Clone(s.reservations), func(r *SubnetCIDRReservation) string { return r.ID }, nil,
		nil, reservationFilters, true)
	if aerr != nil {
		return nil, aerr
	}
	w := &xmlWriter{}
	w.list("subnetIpv4CidrReservationSet", "item", len(page), func(k int) {
		r := page[k]
		w.leaf("subnetCidrReservationId", r.ID)
		w.leaf("subnetId", r.SubnetID)
		w.leaf("cidr", r.CIDR)
		w.leaf("reservationType", r.Type)
		w.leaf("ownerId", a.ID)
		w.opt("description", r.Description)
		w.ec2Tags(r.Tags)
	})
	w.open("subnetIpv6CidrReservationSet")
	w.close("subnetIpv6CidrReservationSet")
	w.opt("nextToken", next)
	return w, nil
}
