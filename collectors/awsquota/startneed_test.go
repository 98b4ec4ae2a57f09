package awsquota

import "testing"

// The counts are worked out by hand for an m5.large: 3 ENIs of 10
// addresses, so 9 secondary slots per ENI.
func TestStartNeedBySubnetRole(t *testing.T) {
	m5 := typeInfo{vcpus: 2, enis: 3, ipv4PerENI: 10}
	single := typeInfo{vcpus: 2, enis: 1, ipv4PerENI: 4}
	for _, tc := range []struct {
		name string
		c    CNISettings
		ti   typeInfo
		want startNeed
	}{
		// 2 ENIs, all 10 addresses each.
		{"warm ENI", CNISettings{ENIs: 2}, m5, startNeed{enis: 2, addrs: 20}},
		// Custom networking, WARM_ENI_TARGET 1: the primary ENI (1 address,
		// node subnet) and one pod ENI with its 10 (pod subnet).
		{"custom networking, warm ENI", CNISettings{ENIs: 2, CustomNetworking: true}, m5, startNeed{enis: 2, addrs: 11, podAddrs: 10}},
		// WARM_ENI_TARGET 0: ipamd still fills one pod ENI.
		{"custom networking, no warm ENI", CNISettings{ENIs: 1, CustomNetworking: true}, m5, startNeed{enis: 2, addrs: 11, podAddrs: 10}},
		// WARM_ENI_TARGET 4: the 2 ENIs left after the primary, 20.
		{"custom networking, warm ENIs beyond the type", CNISettings{ENIs: 5, CustomNetworking: true}, m5, startNeed{enis: 3, addrs: 21, podAddrs: 20}},
		// MINIMUM_IP_TARGET 12: 2 pod ENIs (9 slots each), 2 primaries + 12.
		{"custom networking, IP target", CNISettings{MinimumIPTarget: 12, CustomNetworking: true}, m5, startNeed{enis: 3, addrs: 15, podAddrs: 14}},
		// One /28 on a pod ENI: its primary and 16.
		{"custom networking, prefix delegation", CNISettings{PrefixDelegation: true, WarmPrefixTarget: 1, CustomNetworking: true}, m5,
			startNeed{enis: 2, addrs: 18, podAddrs: 17, prefixes: 1}},
		// WARM_PREFIX_TARGET 3 on the primary ENI: 1 + 48.
		{"prefix delegation", CNISettings{PrefixDelegation: true, WarmPrefixTarget: 3}, m5, startNeed{enis: 1, addrs: 49, prefixes: 3}},
		// WARM_IP_TARGET 40 wins over WARM_PREFIX_TARGET: ceil(40/16) = 3.
		{"prefix delegation with IP target", CNISettings{PrefixDelegation: true, WarmPrefixTarget: 1, WarmIPTarget: 40}, m5, startNeed{enis: 1, addrs: 49, prefixes: 3}},
		// A single-ENI type has no ENI for pods with custom networking.
		{"custom networking on one ENI", CNISettings{ENIs: 2, CustomNetworking: true}, single, startNeed{enis: 1, addrs: 1}},
		{"unknown network shape", CNISettings{ENIs: 2}, typeInfo{vcpus: 2}, startNeed{}},
	} {
		if got := tc.c.start(tc.ti); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
