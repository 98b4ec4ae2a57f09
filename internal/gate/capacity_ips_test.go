package gate

import (
	"strings"
	"testing"
)

func TestCapacityIPs(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	runRowCases(t, f, g, "node-b", []rowCase{
		{"17", []string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"}, "capacity/ips", Fail, "eu-west-1b has 17 free"},
		{"NaN", []string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"}, "capacity/ips", Unknown, "eu-west-1b NaN"},
		{"", []string{"__name__", "upgradeguard_aws_asg_surge_ips"}, "capacity/ips", Unknown, "no upgradeguard_aws_asg_surge_ips"},
	})
	runRowCases(t, f, g, "node-a", []rowCase{
		{"", []string{"__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1a"}, "capacity/ips", Unknown, `no upgradeguard_zone_available_ips for zone "eu-west-1a"`},
	})
	f.set(healthy()...)
	wantRow(t, eval(t, g, "node-zz"), "capacity/ips", Unknown, `zone of node "node-zz" is unknown`)
}

// cniCluster is healthy() with the VPC CNI's side as the exporter
// publishes it: 4 nodes under the aws-node DaemonSet, whose target is up,
// and the settings in force; more adds series.
func cniCluster(custom, prefixes bool, more ...series) []series {
	j := func(value string, kv ...string) series {
		return ser(value, append(kv, "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")...)
	}
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	ss := append(healthy(),
		j("4", "__name__", "upgradeguard_vpc_cni_nodes"),
		j(b(custom), "__name__", "upgradeguard_vpc_cni_setting", "setting", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "source", "daemonset"),
		j(b(prefixes), "__name__", "upgradeguard_vpc_cni_setting", "setting", "ENABLE_PREFIX_DELEGATION", "source", "daemonset"),
		ser("1", "__name__", "up", "job", "aws-node", "instance", "10.0.0.1:61678", "cluster", "prod"),
	)
	return append(ss, more...)
}

func j(value string, kv ...string) series {
	return ser(value, append(kv, "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")...)
}

// The IP capacity cases (prefix delegation, custom networking), each
// worked out by hand. healthy() has zones a
// (120 free) and b (80 free) and groups nodes-a (surge 18 addresses) and
// nodes-b (10); node-b is in zone b.
func TestCapacityIPsVPCCNI(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	check := func(name string, ss []series, node string, st Status, why string) {
		t.Helper()
		f.set(ss...)
		e := eval(t, g, node)
		r := row(t, e, "capacity/ips")
		if r.Status != st || !strings.Contains(r.Why, why) || st != Pass && e.Verdict == GO {
			t.Errorf("%s: %s %q (threshold %q, value %q), want %s with %q", name, r.Status, r.Why, r.Threshold, r.Value, st, why)
		}
	}
	check("the VPC CNI as healthy() has it", cniCluster(false, false), "node-b", Pass, "")

	// Prefix delegation, a fragmented subnet: 80 free addresses in zone b
	// but no aligned /28; a surge takes 1 prefix. The addresses alone
	// (the check before /28 blocks were counted) said GO.
	pd := func(zoneB string) []series {
		return cniCluster(false, true,
			j("6", "__name__", "upgradeguard_zone_available_prefixes", "zone", "eu-west-1a", "role", "node"),
			j(zoneB, "__name__", "upgradeguard_zone_available_prefixes", "zone", "eu-west-1b", "role", "node"),
			j("1", "__name__", "upgradeguard_aws_asg_surge_prefixes", "account", "1", "region", "eu-west-1", "asg", "nodes-a"),
			j("1", "__name__", "upgradeguard_aws_asg_surge_prefixes", "account", "1", "region", "eu-west-1", "asg", "nodes-b"))
	}
	check("fragmented zone", pd("0"), "node-b", Fail, "eu-west-1b has 0 /28 prefixes free, needs 1")
	check("one free /28", pd("1"), "node-b", Pass, "")
	// Without --node every zone counts.
	check("fragmented zone, every zone", pd("0"), "", Fail, "eu-west-1b has 0 /28 prefixes free")
	// Prefix delegation on, but the prefix counts are missing (the first
	// prefix refresh has not succeeded): unknown, not GO.
	check("no prefix series", replace(pd("3"), "", "__name__", "upgradeguard_zone_available_prefixes"), "node-b", Unknown,
		`no upgradeguard_zone_available_prefixes{role="node"} for zone "eu-west-1b"`)
	check("no surge prefixes", replace(pd("3"), "", "__name__", "upgradeguard_aws_asg_surge_prefixes"), "node-b", Unknown,
		"no upgradeguard_aws_asg_surge_prefixes series")

	// Custom networking: the node subnets give each new node 1 address
	// (nodes-a: 18 - 17), the pod subnets its pods' 17.
	cn := func(nodeB, podB string) []series {
		ss := replace(cniCluster(true, false), nodeB, "__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b")
		return append(ss,
			j("4000", "__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1a", "role", "pod"),
			j(podB, "__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b", "role", "pod"),
			j("17", "__name__", "upgradeguard_aws_asg_surge_pod_ips", "account", "1", "region", "eu-west-1", "asg", "nodes-a"),
			j("9", "__name__", "upgradeguard_aws_asg_surge_pod_ips", "account", "1", "region", "eu-west-1", "asg", "nodes-b"))
	}
	// 5 free in the node subnet is enough for a node's primary address;
	// the check before custom networking was counted compared 5 with 18 and said no.
	check("custom networking, small node subnet", cn("5", "300"), "node-b", Pass, "")
	check("custom networking, full node subnet", cn("0", "300"), "node-b", Fail, "eu-west-1b has 0 node addresses free, needs 1")
	check("custom networking, short pod subnet", cn("80", "16"), "node-b", Fail, "eu-west-1b has 16 pod addresses free, needs 17")
	check("custom networking, no ENIConfig for the zone", replace(cn("80", "300"), "", "__name__", "upgradeguard_zone_available_ips", "role", "pod", "zone", "eu-west-1b"),
		"node-b", Unknown, `no upgradeguard_zone_available_ips{role="pod"} for zone "eu-west-1b"`)
	check("custom networking without the pod split", replace(cn("80", "300"), "", "__name__", "upgradeguard_aws_asg_surge_pod_ips"),
		"node-b", Unknown, "no upgradeguard_aws_asg_surge_pod_ips series")

	// Both: the pods' prefixes come from the pod subnets.
	both := append(cn("80", "300"),
		j("0", "__name__", "upgradeguard_zone_available_prefixes", "zone", "eu-west-1b", "role", "node"),
		j("2", "__name__", "upgradeguard_zone_available_prefixes", "zone", "eu-west-1b", "role", "pod"),
		j("2", "__name__", "upgradeguard_aws_asg_surge_prefixes", "account", "1", "region", "eu-west-1", "asg", "nodes-a"))
	both = replace(both, "1", "__name__", "upgradeguard_vpc_cni_setting", "setting", "ENABLE_PREFIX_DELEGATION")
	check("custom networking and prefix delegation", both, "node-b", Pass, "")
	check("custom networking and prefix delegation, pod subnet fragmented",
		replace(both, "1", "__name__", "upgradeguard_zone_available_prefixes", "role", "pod"), "node-b", Fail, "eu-west-1b has 1 /28 prefixes free, needs 2")

	// The aws-node target: VPC CNI nodes but no target up is UNKNOWN;
	// a cluster without the VPC CNI needs none.
	check("aws-node not scraped", replace(cniCluster(false, false), "", "__name__", "up", "job", "aws-node"), "node-b", Unknown,
		`4 VPC CNI nodes (the aws-node DaemonSet) but no aws-node target is up (up{job=~"aws-node"})`)
	check("aws-node down", replace(cniCluster(false, false), "0", "__name__", "up", "job", "aws-node"), "node-b", Unknown, "no aws-node target is up")
	check("no VPC CNI", replace(replace(cniCluster(false, false), "", "__name__", "up", "job", "aws-node"), "0", "__name__", "upgradeguard_vpc_cni_nodes"),
		"node-b", Pass, "")
	check("short beats unknown", replace(replace(cniCluster(false, false), "", "__name__", "up", "job", "aws-node"), "5", "__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"),
		"node-b", Fail, "eu-west-1b has 5 free")
	// Another cluster's aws-node target does not count.
	other := replace(cniCluster(false, false), "", "__name__", "up", "job", "aws-node")
	other = append(other, ser("1", "__name__", "up", "job", "aws-node", "instance", "10.9.0.1:61678", "cluster", "staging"))
	check("aws-node of another cluster", other, "node-b", Unknown, "no aws-node target is up")

	// capacity.ips_needed stands for both the node's and the pods' need.
	g2, _ := newGate(t, f, testPolicy(t, "capacity:\n  ips_needed: 20\n  aws_node_job: 'kube-system/aws-node'\n"))
	f.set(cn("25", "19")...)
	wantRow(t, eval(t, g2, "node-b"), "capacity/ips", Fail, "eu-west-1b has 19 pod addresses free, needs 20")
	if _, err := ParsePolicy([]byte("capacity:\n  aws_node_job: '('\n")); err == nil || !strings.Contains(err.Error(), "capacity.aws_node_job") {
		t.Errorf("bad aws_node_job: %v", err)
	}
}
