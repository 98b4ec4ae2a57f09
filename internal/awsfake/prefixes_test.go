package awsfake

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// fragmentedAddrs are one address in each of the /28 blocks 1..14 of a /24
// (x.16k+4): block 0 already holds AWS's first four addresses and block 15
// its last, so no aligned /28 of the subnet is free while 251 - 14 = 237
// addresses are.
func fragmentedAddrs(base string) []string {
	var out []string
	for k := 1; k <= 14; k++ {
		out = append(out, fmt.Sprintf("%s.%d", base, 16*k+4))
	}
	return out
}

func TestPrefixDelegationNeedsAFreeAlignedBlock(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	frag := must[Subnet](t)(a.AddSubnet(SubnetSpec{CIDR: "10.0.0.0/24", AZ: region + "a"}))
	holder := must[ENI](t)(a.AddENI(ENISpec{Subnet: frag.ID, PrivateIPs: fragmentedAddrs("10.0.0")}))
	if got, _ := a.Subnet(frag.ID); got.AvailableIPs != 237 {
		t.Fatalf("fragmented subnet has %d free addresses, want 237", got.AvailableIPs)
	}
	// 237 free addresses, no free /28: a prefix fails as EC2 fails it.
	_, err := a.AddENI(ENISpec{Subnet: frag.ID, IPv4Prefixes: 1})
	if apiCode(err) != "InsufficientCidrBlocks" {
		t.Fatalf("prefix in a fragmented subnet: %v, want InsufficientCidrBlocks", err)
	}
	if got, _ := a.Subnet(frag.ID); got.AvailableIPs != 237 {
		t.Errorf("the failed ENI kept addresses: %d free, want 237", got.AvailableIPs)
	}
	// Single addresses still work.
	must[ENI](t)(a.AddENI(ENISpec{Subnet: frag.ID, SecondaryIPs: 2}))

	// A named address in use is refused.
	if _, err := a.AddENI(ENISpec{Subnet: frag.ID, PrivateIPs: []string{"10.0.0.20"}}); apiCode(err) != "InvalidIPAddress.InUse" {
		t.Errorf("reusing 10.0.0.20: %v", err)
	}
	// Freeing one block's holder frees that block.
	if err := a.DeleteENI(holder.ID); err != nil {
		t.Fatal(err)
	}
	e := must[ENI](t)(a.AddENI(ENISpec{Subnet: frag.ID, IPv4Prefixes: 1}))
	if len(e.IPv4Prefixes) != 1 {
		t.Fatalf("prefixes %v", e.IPv4Prefixes)
	}

	// The SDK sees the prefixes.
	out, err := c.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{e.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.NetworkInterfaces); n != 1 || len(out.NetworkInterfaces[0].Ipv4Prefixes) != 1 ||
		aws.ToString(out.NetworkInterfaces[0].Ipv4Prefixes[0].Ipv4Prefix) != e.IPv4Prefixes[0] {
		t.Errorf("DescribeNetworkInterfaces: %+v, want prefix %v", out.NetworkInterfaces, e.IPv4Prefixes)
	}
}

func TestPrefixesAndReservations(t *testing.T) {
	srv, c := start(t)
	a := srv.Account()
	s := must[Subnet](t)(a.AddSubnet(SubnetSpec{CIDR: "10.1.0.0/24", AZ: region + "a"}))
	// Primary .4 (the lowest usable), then the lowest free blocks: .0/28
	// holds AWS's addresses and .4, so .16 and .32.
	e := must[ENI](t)(a.AddENI(ENISpec{Subnet: s.ID, IPv4Prefixes: 2}))
	if e.PrivateIPs[0] != "10.1.0.4" || !slices.Equal(e.IPv4Prefixes, []string{"10.1.0.16/28", "10.1.0.32/28"}) {
		t.Fatalf("ENI %v %v", e.PrivateIPs, e.IPv4Prefixes)
	}
	if got, _ := a.Subnet(s.ID); got.AvailableIPs != 251-1-32 {
		t.Errorf("free %d, want 218: prefixes' addresses are in use", got.AvailableIPs)
	}
	explicit := must[SubnetCIDRReservation](t)(a.AddSubnetCIDRReservation(s.ID, "10.1.0.48/28", "explicit", nil))
	must[SubnetCIDRReservation](t)(a.AddSubnetCIDRReservation(s.ID, "10.1.0.192/27", "prefix", map[string]string{"team": "cni"}))
	if _, err := a.AddSubnetCIDRReservation(s.ID, "10.1.0.48/29", "explicit", nil); apiCode(err) != "InvalidSubnetCidrReservation.Conflict" {
		t.Errorf("overlapping reservation: %v", err)
	}
	if _, err := a.AddSubnetCIDRReservation(s.ID, "10.2.0.0/28", "explicit", nil); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("reservation outside the subnet: %v", err)
	}
	// A prefix comes from the prefix reservation first; single addresses
	// skip both reservations.
	e2 := must[ENI](t)(a.AddENI(ENISpec{Subnet: s.ID, IPv4Prefixes: 3, SecondaryIPs: 1}))
	if !slices.Equal(e2.IPv4Prefixes, []string{"10.1.0.192/28", "10.1.0.208/28", "10.1.0.64/28"}) {
		t.Errorf("prefixes %v: want the prefix reservation's two blocks, then the first free block past the explicit one", e2.IPv4Prefixes)
	}
	for _, ip := range e2.PrivateIPs {
		if netip.MustParsePrefix("10.1.0.48/28").Contains(netip.MustParseAddr(ip)) {
			t.Errorf("address %s given from the explicit reservation", ip)
		}
	}

	var all []string
	var next *string
	pages := 0
	srv.SetPageSize(1, 1)
	for {
		out, err := c.ec2.GetSubnetCidrReservations(ctx, &ec2.GetSubnetCidrReservationsInput{SubnetId: aws.String(s.ID), NextToken: next})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range out.SubnetIpv4CidrReservations {
			all = append(all, aws.ToString(r.Cidr)+" "+string(r.ReservationType))
		}
		if next = out.NextToken; next == nil {
			break
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, []string{"10.1.0.192/27 prefix", "10.1.0.48/28 explicit"}) || pages < 2 {
		t.Errorf("GetSubnetCidrReservations = %v in %d pages", all, pages)
	}
	out, err := c.ec2.GetSubnetCidrReservations(ctx, &ec2.GetSubnetCidrReservationsInput{SubnetId: aws.String(s.ID),
		Filters: []types.Filter{ec2Filter("reservationType", "explicit")}})
	if err != nil || len(out.SubnetIpv4CidrReservations) != 1 || aws.ToString(out.SubnetIpv4CidrReservations[0].SubnetCidrReservationId) != explicit.ID {
		t.Errorf("filtered by type: %v %+v", err, out)
	}
	if _, err := c.ec2.GetSubnetCidrReservations(ctx, &ec2.GetSubnetCidrReservationsInput{SubnetId: aws.String("subnet-nope")}); apiCode(err) != "InvalidSubnetID.NotFound" {
		t.Errorf("unknown subnet: %v", err)
	}
	if got := srv.Calls("ec2:GetSubnetCidrReservations"); got < 4 {
		t.Errorf("calls counted %d", got)
	}

	// Deleting the ENI frees its prefixes.
	if err := a.DeleteENI(e2.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteENI(e.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Subnet(s.ID); got.AvailableIPs != 251 {
		t.Errorf("free %d after deleting every ENI, want 251", got.AvailableIPs)
	}
}
