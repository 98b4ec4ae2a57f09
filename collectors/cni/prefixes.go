package cni

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"go4.org/netipx"
)

// With ENABLE_PREFIX_DELEGATION, ipamd asks EC2 for /28 prefixes instead of
// secondary addresses: each new ENI is created with Ipv4PrefixCount
// prefixes (aws/amazon-vpc-cni-k8s pkg/awsutils/awsutils.go createENI) and
// more are assigned to attached ENIs (AllocIPAddresses), one slot of the
// ENI's IPv4 limit per prefix (pkg/ipamd/ipamd.go GetIPv4Limit). EC2
// delegates only aligned /28 blocks whose 16 addresses are all free and
// fails with InsufficientCidrBlocks otherwise, which ipamd treats as a full
// subnet (containsInsufficientCIDRsOrSubnetIPs, insufficientCidrErrorCooldown):
// a subnet's free addresses say nothing about whether a prefix can be had.
// So the collector counts the free aligned /28 blocks of each subnet.

// delegatedPrefixBits is the length of the IPv4 prefixes EC2 delegates.
const delegatedPrefixBits = 28

// subnetUse is what holds a subnet's addresses: the addresses and prefixes
// of its ENIs and its explicit CIDR reservations.
type subnetUse struct {
	used []netip.Prefix
	// explicit holds the explicit reservations: EC2 never delegates a
	// prefix from them. Prefix reservations are where EC2 delegates
	// prefixes from, so their free blocks count as free.
	explicit []netip.Prefix
}

// FreePrefixes counts the aligned /28 blocks of cidr that EC2 can delegate:
// not touching AWS's five addresses of every subnet (the first four and the
// last), an address or prefix in use, or an explicit reservation. A
// subnet smaller than /28, or not IPv4, has none.
//
// The set of free addresses is built with netipx; its minimal prefixes are
// aligned blocks, and an aligned /28 is free exactly when it lies inside
// one of them of length 28 or less, which holds 2^(28-len) such blocks.
func FreePrefixes(cidr netip.Prefix, used ...netip.Prefix) (int, error) {
	cidr = cidr.Masked()
	if !cidr.Addr().Is4() || cidr.Bits() > delegatedPrefixBits {
		return 0, nil
	}
	var b netipx.IPSetBuilder
	b.AddPrefix(cidr)
	r := netipx.RangeOfPrefix(cidr)
	first := r.From()
	fourth := first.Next().Next().Next()
	b.RemoveRange(netipx.IPRangeFrom(first, fourth))
	b.Remove(r.To())
	for _, p := range used {
		b.RemovePrefix(p.Masked())
	}
	set, err := b.IPSet()
	if err != nil {
		return 0, fmt.Errorf("free /28 blocks of %s: %w", cidr, err)
	}
	n := 0
	for _, p := range set.Prefixes() {
		if p.Bits() <= delegatedPrefixBits {
			n += 1 << (delegatedPrefixBits - p.Bits())
		}
	}
	return n, nil
}

// refreshPrefixes asks EC2 what holds the addresses of the subnets: their
// ENIs (DescribeNetworkInterfaces filtered by subnet-id, up to 200 subnets
// and 1,000 ENIs a request) and each subnet's CIDR reservations
// (GetSubnetCidrReservations, one request per subnet), and returns the free
// /28 blocks of each subnet by id.
func (c *Collector) refreshPrefixes(ctx context.Context, subnets []subnet) (map[string]int, error) {
	use := map[string]*subnetUse{}
	var ids []string
	for _, s := range subnets {
		if _, ok := use[s.id]; !ok {
			use[s.id] = &subnetUse{}
			ids = append(ids, s.id)
		}
	}
	for _, b := range batches(ids, filterBatch) {
		p := ec2.NewDescribeNetworkInterfacesPaginator(c.opts.EC2, &ec2.DescribeNetworkInterfacesInput{
			Filters:    []types.Filter{{Name: aws.String("subnet-id"), Values: b}},
			MaxResults: aws.Int32(1000),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing the network interfaces of %d subnets: %w", len(b), err)
			}
			for _, e := range page.NetworkInterfaces {
				u := use[aws.ToString(e.SubnetId)]
				if u == nil {
					continue
				}
				for _, a := range e.PrivateIpAddresses {
					if ip, err := netip.ParseAddr(aws.ToString(a.PrivateIpAddress)); err == nil {
						u.used = append(u.used, netip.PrefixFrom(ip, ip.BitLen()))
					}
				}
				for _, pf := range e.Ipv4Prefixes {
					v := aws.ToString(pf.Ipv4Prefix)
					pfx, err := netip.ParsePrefix(v)
					if err != nil {
						return nil, fmt.Errorf("network interface %s has prefix %q: %w", aws.ToString(e.NetworkInterfaceId), v, err)
					}
					u.used = append(u.used, pfx)
				}
			}
		}
	}
	for _, id := range ids {
		in := &ec2.GetSubnetCidrReservationsInput{SubnetId: aws.String(id), MaxResults: aws.Int32(1000)}
		for {
			out, err := c.opts.EC2.GetSubnetCidrReservations(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("getting the CIDR reservations of subnet %s: %w", id, err)
			}
			for _, r := range out.SubnetIpv4CidrReservations {
				v := aws.ToString(r.Cidr)
				pfx, err := netip.ParsePrefix(v)
				if err != nil {
					return nil, fmt.Errorf("subnet %s has CIDR reservation %q: %w", id, v, err)
				}
				if r.ReservationType != types.SubnetCidrReservationTypePrefix {
					use[id].explicit = append(use[id].explicit, pfx)
				}
			}
			if aws.ToString(out.NextToken) == "" {
				break
			}
			in.NextToken = out.NextToken
		}
	}
	free := map[string]int{}
	for _, s := range subnets {
		cidr, err := netip.ParsePrefix(s.cidr)
		if err != nil {
			return nil, fmt.Errorf("subnet %s has CIDR %q: %w", s.id, s.cidr, err)
		}
		u := use[s.id]
		n, err := FreePrefixes(cidr, append(u.used, u.explicit...)...)
		if err != nil {
			return nil, err
		}
		free[s.id] = n
	}
	return free, nil
}
