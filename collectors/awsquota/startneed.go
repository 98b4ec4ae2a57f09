package awsquota

// What ipamd (the VPC CNI's IP address manager) takes from the subnets when
// a new node starts, before it runs a single pod, following
// aws/amazon-vpc-cni-k8s pkg/ipamd/ipamd.go:
//   - without WARM_IP_TARGET or MINIMUM_IP_TARGET the pool is too low until
//     it holds WARM_ENI_TARGET ENIs' worth of free addresses
//     (isDatastorePoolTooLow), each new ENI filled with every secondary
//     address (GetENIResourcesToAllocate: maxIPsPerENI);
//   - with either target, the larger decides (datastoreTargetState);
//   - with ENABLE_PREFIX_DELEGATION each slot of an ENI holds a /28
//     (GetIPv4Limit), and at least one prefix is allocated, else
//     WARM_PREFIX_TARGET or enough for the IP targets (getPrefixesNeeded);
//   - with custom networking the primary ENI holds no pod address and every
//     ENI ipamd attaches is created in the ENIConfig's subnet
//     (pkg/awsutils/awsutils.go createENI with the ENIConfig's subnet), so
//     a node takes one address in its node subnet and the rest in its pod
//     subnet.

// startNeed is what one new node takes at start.
type startNeed struct {
	// enis are the ENIs attached, the primary included.
	enis int64
	// addrs are the subnet addresses taken: each ENI's primary address,
	// the secondary addresses, 16 per prefix. 0: the type's network shape
	// is unknown.
	addrs int64
	// podAddrs, with custom networking, are the addresses of addrs taken in
	// the pod subnet; 0 without.
	podAddrs int64
	// prefixes are the /28 prefixes taken with prefix delegation.
	prefixes int64
}

// start is what a new node of an instance type takes at start.
func (c CNISettings) start(ti typeInfo) startNeed {
	maxENIs, perENI := int64(ti.enis), int64(ti.ipv4PerENI)
	if maxENIs <= 0 || perENI <= 1 {
		return startNeed{}
	}
	slots := perENI - 1 // secondary addresses (or prefixes) per ENI
	target := int64(max(c.WarmIPTarget, c.MinimumIPTarget))
	// Pod ENIs: every ENI, or all but the primary with custom networking.
	podENIs := maxENIs
	if c.CustomNetworking {
		podENIs--
	}
	need := func(secondaries int64) int64 { // ENIs to hold them
		return min(podENIs, max(1, (secondaries+slots-1)/slots))
	}
	var e, secondaryAddrs, prefixes int64
	switch {
	case c.PrefixDelegation:
		want := int64(max(c.WarmPrefixTarget, 1))
		if target > 0 {
			want = (target + 15) / 16
		}
		e = need(want)
		prefixes = min(want, e*slots)
		secondaryAddrs = 16 * prefixes
	case target > 0:
		e = need(target)
		secondaryAddrs = min(target, e*slots)
	default:
		// 1 + WARM_ENI_TARGET ENIs; with custom networking the primary
		// holds none, so WARM_ENI_TARGET pod ENIs (at least one: ipamd
		// allocates when its pool is empty).
		warm := int64(max(c.ENIs, 1))
		if c.CustomNetworking {
			warm = max(warm-1, 1)
		}
		e = min(podENIs, warm)
		secondaryAddrs = e * slots
	}
	if !c.CustomNetworking {
		return startNeed{enis: e, addrs: e + secondaryAddrs, prefixes: prefixes}
	}
	pod := e + secondaryAddrs // the pod ENIs' primaries too
	return startNeed{enis: 1 + e, addrs: 1 + pod, podAddrs: pod, prefixes: prefixes}
}

// atStart is how many ENIs ipamd attaches to a new node of an instance type
// before any pod runs, and how many subnet addresses they take (start).
// 0 addresses means the type's network shape is unknown.
func (c CNISettings) atStart(ti typeInfo) (enis, addrs int64) {
	n := c.start(ti)
	return n.enis, n.addrs
}
