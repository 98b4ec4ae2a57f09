package awsquota

import (
	"sync"
	"testing"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// With CNIFunc the surge addresses follow the VPC CNI settings at each
// refresh (the aws-node DaemonSet's, read by the exporter), not the ones
// the collector was built with.
func TestSurgeFollowsCNIFunc(t *testing.T) {
	e := newEnv(t)
	a := e.acct
	sub := must[awsfake.Subnet](t)(a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.5.0.0/20", AZ: "us-east-1a"}))
	must[awsfake.LaunchTemplate](t)(a.AddLaunchTemplate("plain", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil))
	must[awsfake.ASG](t)(a.AddASG(awsfake.ASGSpec{Name: "plain", LaunchTemplate: "plain", Desired: 1, Max: 10,
		Subnets: []string{sub.ID}, Tags: map[string]string{"kubernetes.io/cluster/demo": "owned"}}))
	var mu sync.Mutex
	current := CNISettings{ENIs: 1 + 1} // WARM_ENI_TARGET 1
	c := e.collector(t, func(o *Options) {
		o.ClusterName = "demo"
		o.CNI = CNISettings{ENIs: 3} // ignored: CNIFunc wins
		o.CNIFunc = func() CNISettings { mu.Lock(); defer mu.Unlock(); return current }
	})
	key := "upgradeguard_aws_asg_surge_ips/plain"
	for _, step := range []struct {
		name             string
		cni              CNISettings
		want             float64
		podIPs, prefixes float64 // -1: no series
	}{
		// m5.large: ENIs of 10 addresses. Two ENIs, all their addresses.
		{"warm ENI", CNISettings{ENIs: 2}, 20, -1, -1},
		// WARM_ENI_TARGET 0: the primary ENI alone.
		{"no warm ENI", CNISettings{ENIs: 1}, 10, -1, -1},
		// Prefix delegation with WARM_PREFIX_TARGET unset (0): ipamd still
		// takes one prefix; the primary address and 16.
		{"prefix delegation", CNISettings{ENIs: 2, PrefixDelegation: true}, 1 + 16, -1, 1},
		// Custom networking too: the node's primary address in its node
		// subnet, a pod ENI's primary and one /28 in the pod subnet.
		{"custom networking and prefix delegation", CNISettings{ENIs: 2, PrefixDelegation: true, CustomNetworking: true}, 1 + 1 + 16, 1 + 16, 1},
	} {
		mu.Lock()
		current = step.cni
		mu.Unlock()
		if err := refresh(t, c); err != nil {
			t.Fatal(err)
		}
		got, err := scrape(t, c)
		if err != nil {
			t.Fatal(err)
		}
		if got[key] != step.want {
			t.Errorf("%s: surge addresses %v, want %v ", step.name, got[key], step.want)
		}
	}
}
