package cni

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

func pfx(s string) netip.Prefix {
	if !strings.Contains(s, "/") {
		s += "/32"
	}
	return netip.MustParsePrefix(s)
}

// The free /28 counts below are worked out by hand: a /N subnet has
// 2^(28-N) aligned /28 blocks; the first block holds AWS's first four
// addresses and the last block its last one, so neither is ever free.
func TestFreePrefixes(t *testing.T) {
	fragmented := []netip.Prefix{}
	for k := 1; k <= 14; k++ {
		fragmented = append(fragmented, pfx(fmt.Sprintf("10.0.0.%d", 16*k+4)))
	}
	for _, tc := range []struct {
		name string
		cidr string
		used []netip.Prefix
		want int
	}{
		// 16 blocks - block 0 (.0-.3) - block 15 (.255) = 14.
		{"empty /24", "10.0.0.0/24", nil, 14},
		// Fragmented: one address in each of blocks 1..14 leaves 251 -
		// 14 = 237 free addresses and not one free block.
		{"fragmented /24", "10.0.0.0/24", fragmented, 0},
		// An ENI with primary .4 (block 0, already out) and prefixes .16/28
		// and .32/28 (blocks 1, 2): 14 - 2 = 12.
		{"ENI with two prefixes", "10.0.0.0/24", []netip.Prefix{pfx("10.0.0.4"), pfx("10.0.0.16/28"), pfx("10.0.0.32/28")}, 12},
		// An explicit reservation of .64/26 takes blocks 4..7: 14 - 4 = 10.
		{"explicit reservation", "10.0.0.0/24", []netip.Prefix{pfx("10.0.0.64/26")}, 10},
		// Addresses in one block count once: .100 and .101 are both in
		// block 6: 14 - 1 = 13.
		{"two addresses in one block", "10.0.0.0/24", []netip.Prefix{pfx("10.0.0.100"), pfx("10.0.0.101")}, 13},
		// 4096 / 16 = 256 blocks, less the first and the last: 254.
		{"empty /20", "10.0.16.0/20", nil, 254},
		// A /28 subnet is one block, which holds AWS's addresses: 0.
		{"/28", "10.0.0.16/28", nil, 0},
		{"/29", "10.0.0.16/29", nil, 0},
		// A /27: blocks 0 and 1 hold AWS's first four and last address: 0.
		{"/27", "10.0.0.32/27", nil, 0},
		// A /26: 4 blocks, 2 free.
		{"/26", "10.0.0.64/26", nil, 2},
		// An address outside the subnet changes nothing.
		{"outside", "10.0.0.0/24", []netip.Prefix{pfx("10.9.0.20")}, 14},
		{"IPv6", "2001:db8::/56", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FreePrefixes(netip.MustParsePrefix(tc.cidr), tc.used...)
			if err != nil || got != tc.want {
				t.Errorf("FreePrefixes(%s) = %d, %v; want %d", tc.cidr, got, err, tc.want)
			}
		})
	}
}

func awsNodeDS(desired int32, env ...corev1.EnvVar) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: kube.AWSNodeName, Namespace: kube.AWSNodeNamespace},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "aws-vpc-cni-init"}, {Name: kube.AWSNodeContainer, Env: env},
		}}}},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: desired},
	}
}

func env(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }

func eniConfig(name, subnet string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"subnet": subnet, "securityGroups": []any{"sg-1"}},
	}}
	return u
}

// startCNI is start with the aws-node DaemonSet and ENIConfig informers
// wired, the ENIConfigs served by a fake dynamic client.
func (f *fixture) startCNI(t *testing.T, opts Options, eniConfigs []runtime.Object, objs ...runtime.Object) *Collector {
	t.Helper()
	client := fake.NewClientset(objs...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{kube.ENIConfigResource: "ENIConfigList"}, eniConfigs...)
	inf := kube.NewInformers(client, kube.Options{NodeLabels: nodes.Options{}.NodeLabels()}, slog.New(slog.DiscardHandler))
	opts.EC2 = ec2.NewFromConfig(f.srv.Config(region), func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, f.reqs.APIOptions(nil))
	})
	opts.Account, opts.Region = awsfake.DefaultAccountID, region
	opts.Nodes, opts.Pods = inf.Nodes(), inf.Pods()
	opts.AWSNode, opts.ENIConfigs = inf.AWSNode(), inf.ENIConfigs(dyn)
	c := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	inf.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := inf.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func prefixLine(s awsfake.Subnet, role string, n int) string {
	return fmt.Sprintf("upgradeguard_subnet_available_prefixes{account=\"123456789012\",cidr=%q,region=\"us-east-1\",role=%q,subnet_id=%q,vpc_id=%q,zone=%q} %d\n", s.CIDR, role, s.ID, s.VPCID, s.AZ, n)
}

const prefixHeader = `
# HELP upgradeguard_subnet_available_prefixes Free aligned /28 blocks of a cluster subnet that EC2 can delegate with prefix delegation (not touching an address or prefix in use, an explicit CIDR reservation or AWS's five addresses), as of the last AWS refresh; only with prefix delegation.
# TYPE upgradeguard_subnet_available_prefixes gauge
# HELP upgradeguard_zone_available_prefixes Free aligned /28 blocks of the cluster subnets of a role in a zone, summed, as of the last AWS refresh; only with prefix delegation.
# TYPE upgradeguard_zone_available_prefixes gauge
`

var prefixNames = []string{"upgradeguard_subnet_available_prefixes", "upgradeguard_zone_available_prefixes"}

// Prefix delegation from the aws-node DaemonSet: the collector counts the
// free /28 blocks of each subnet from its ENIs and reservations, in a
// bounded number of AWS calls, none on a scrape.
func TestPrefixDelegationFromTheDaemonSet(t *testing.T) {
	f := newAWS(t)
	tag := map[string]string{ClusterTagPrefix + "demo": "owned"}
	acct := f.acct
	frag := must[awsfake.Subnet](t)(acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: region + "a", Tags: tag}))
	used := must[awsfake.Subnet](t)(acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.1.0/24", AZ: region + "a", Tags: tag}))
	zoneB := must[awsfake.Subnet](t)(acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.2.0/25", AZ: region + "b", Tags: tag}))
	var addrs []string
	for k := 1; k <= 14; k++ {
		addrs = append(addrs, fmt.Sprintf("10.0.0.%d", 16*k+4))
	}
	must[awsfake.ENI](t)(acct.AddENI(awsfake.ENISpec{Subnet: frag.ID, PrivateIPs: addrs}))
	// Primary 10.0.1.4 and prefixes .16/28 and .32/28.
	must[awsfake.ENI](t)(acct.AddENI(awsfake.ENISpec{Subnet: used.ID, IPv4Prefixes: 2}))
	must[awsfake.SubnetCIDRReservation](t)(acct.AddSubnetCIDRReservation(used.ID, "10.0.1.128/27", "explicit", nil))
	must[awsfake.SubnetCIDRReservation](t)(acct.AddSubnetCIDRReservation(zoneB.ID, "10.0.2.64/26", "prefix", nil))
	f.srv.SetPageSize(1, 1)

	ds := awsNodeDS(3, env(EnvPrefixDelegation, "true"), env(EnvWarmPrefixTarget, "2"))
	c := f.startCNI(t, Options{ClusterName: "demo"}, nil, ds)
	calls := f.srv.CallCounts()
	refresh(t, c)
	// frag: 237 free addresses, 0 blocks (TestFreePrefixes).
	// used: 14 blocks - .16 and .32 (prefixes) - .128/27 (explicit, 2
	// blocks) = 10; its primary .4 is in block 0, already out.
	// zoneB /25: 8 blocks - block 0 - block 7 = 6; a prefix reservation
	// is where EC2 delegates from, so its blocks stay free.
	want := prefixHeader + prefixLine(frag, RoleNode, 0) + prefixLine(used, RoleNode, 10) + prefixLine(zoneB, RoleNode, 6) + `
upgradeguard_zone_available_prefixes{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 10
upgradeguard_zone_available_prefixes{account="123456789012",region="us-east-1",role="node",zone="us-east-1b"} 6
`
	if err := compare(t, c, want, prefixNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	// The addresses stay AWS's count: 237 free in the fragmented subnet.
	if err := compare(t, c, subnetHeader+subnetLines(frag, 237, 251)+subnetLines(used, 251-33, 251)+subnetLines(zoneB, 123, 123)+`
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 455
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1b"} 123
`, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	after := f.srv.CallCounts()
	// 3 subnets in one subnet-id filter: DescribeNetworkInterfaces pages
	// through 2 ENIs one per page (3 requests with the empty last page at
	// most); one GetSubnetCidrReservations per subnet, in pages of one.
	if n := after["ec2:DescribeNetworkInterfaces"] - calls["ec2:DescribeNetworkInterfaces"]; n < 2 || n > 3 {
		t.Errorf("DescribeNetworkInterfaces called %d times", n)
	}
	if n := after["ec2:GetSubnetCidrReservations"] - calls["ec2:GetSubnetCidrReservations"]; n < 3 || n > 5 {
		t.Errorf("GetSubnetCidrReservations called %d times for 3 subnets with 2 reservations", n)
	}
	for range 3 {
		testutil.CollectAndCount(collectors.AsPrometheus(c, nil))
	}
	if got := f.srv.CallCounts(); fmt.Sprint(got) != fmt.Sprint(after) {
		t.Errorf("scrapes called AWS: %v, then %v", after, got)
	}

	// The settings in force, from the DaemonSet.
	if err := compare(t, c, `
# HELP upgradeguard_vpc_cni_nodes Nodes the aws-node DaemonSet (the VPC CNI) should run on: its status.desiredNumberScheduled; 0 when there is no aws-node DaemonSet in kube-system.
# TYPE upgradeguard_vpc_cni_nodes gauge
upgradeguard_vpc_cni_nodes{account="123456789012",region="us-east-1"} 3
`, "upgradeguard_vpc_cni_nodes"); err != nil {
		t.Errorf("Update: %v", err)
	}
	s := c.Settings()
	if !s.PrefixDelegation || s.WarmPrefixTarget != 2 || s.Sources[EnvWarmPrefixTarget] != SourceDaemonSet || s.Sources[EnvWarmIPTarget] != SourceDefault {
		t.Errorf("settings %+v", s)
	}

	// Overridden off by a flag: no prefix series and no prefix calls.
	off := false
	c2 := f.startCNI(t, Options{ClusterName: "demo", Overrides: Overrides{PrefixDelegation: &off}}, nil, ds)
	before := f.srv.CallCounts()
	refresh(t, c2)
	if err := compare(t, c2, "", prefixNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	if got := f.srv.CallCounts(); got["ec2:DescribeNetworkInterfaces"] != before["ec2:DescribeNetworkInterfaces"] || got["ec2:GetSubnetCidrReservations"] != before["ec2:GetSubnetCidrReservations"] {
		t.Errorf("prefix calls without prefix delegation: %v -> %v", before, got)
	}
}

// A failing GetSubnetCidrReservations keeps the last good prefix counts and
// fails the scrape's success, while the subnets stay fresh.
func TestPrefixRefreshFailureKeepsLastGood(t *testing.T) {
	f := newAWS(t)
	tag := map[string]string{ClusterTagPrefix + "demo": "owned"}
	s := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: region + "a", Tags: tag}))
	on := true
	c := f.startCNI(t, Options{ClusterName: "demo", Overrides: Overrides{PrefixDelegation: &on}}, nil)
	refresh(t, c)
	want := prefixHeader + prefixLine(s, RoleNode, 14) + `
upgradeguard_zone_available_prefixes{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 14
`
	if err := compare(t, c, want, prefixNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	f.srv.Fail("ec2:GetSubnetCidrReservations", awsfake.Fault{Code: awsfake.Denied})
	must[awsfake.ENI](t)(f.acct.AddENI(awsfake.ENISpec{Subnet: s.ID, IPv4Prefixes: 1}))
	if err := c.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "CIDR reservations") {
		t.Fatalf("Refresh = %v, want the GetSubnetCidrReservations error", err)
	}
	if err := compare(t, c, want, prefixNames...); err == nil {
		t.Error("Update = nil while the prefix counts are stale")
	}
	// The subnet itself is fresh: one prefix (16) and a primary taken.
	if err := compare(t, c, subnetHeader+subnetLines(s, 251-17, 251)+`
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 234
`, subnetNames...); err == nil {
		t.Error("Update = nil while the prefix counts are stale")
	}
	f.srv.Clear()
	refresh(t, c)
	if err := compare(t, c, prefixHeader+prefixLine(s, RoleNode, 13)+`
upgradeguard_zone_available_prefixes{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 13
`, prefixNames...); err != nil {
		t.Errorf("Update after recovery: %v", err)
	}
}

// Custom networking from the aws-node DaemonSet: the ENIConfigs' subnets
// are the pod subnets of their zones, exported with role="pod" beside the
// cluster's node subnets; node capacity loses the primary ENI.
func TestCustomNetworkingPodSubnets(t *testing.T) {
	f := newAWS(t)
	tag := map[string]string{ClusterTagPrefix + "demo": "owned"}
	nodeA := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: region + "a", Tags: tag}))
	nodeB := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.1.0/24", AZ: region + "b", Tags: tag}))
	podA := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.64.0/20", AZ: region + "a"}))
	podB := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.80.0/26", AZ: region + "b"}))
	must[awsfake.ENI](t)(f.acct.AddENI(awsfake.ENISpec{Subnet: podB.ID, SecondaryIPs: 9}))
	configs := []runtime.Object{eniConfig(region+"a", podA.ID), eniConfig(region+"b", podB.ID), eniConfig("gone", "subnet-0000000000000dead")}

	ds := awsNodeDS(2, env(EnvCustomNetworking, "true"))
	c := f.startCNI(t, Options{ClusterName: "demo"}, configs, ds, node("n1", "m5.large", ""))
	refresh(t, c)
	// /20: 4096 - 5 = 4091; /26: 64 - 5 = 59, 10 held by the ENI.
	want := subnetHeader + subnetLines(nodeA, 251, 251) + subnetLines(nodeB, 251, 251) +
		roleLines(podA, RolePod, 4091, 4091) + roleLines(podB, RolePod, 49, 59) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 251
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1b"} 251
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="pod",zone="us-east-1a"} 4091
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="pod",zone="us-east-1b"} 49
`
	if err := compare(t, c, want, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	// m5.large: 3 ENIs of 10; the primary ENI holds no pod: 2 x 9.
	if err := compare(t, c, capacityHeader+"upgradeguard_node_ip_capacity{account=\"123456789012\",node=\"n1\",region=\"us-east-1\"} 18\n", "upgradeguard_node_ip_capacity"); err != nil {
		t.Errorf("Update: %v", err)
	}

	// The same cluster with custom networking off: the ENIConfigs are not
	// read, and the primary ENI holds pods.
	c2 := f.startCNI(t, Options{ClusterName: "demo"}, configs, awsNodeDS(2, env(EnvCustomNetworking, "false")), node("n1", "m5.large", ""))
	refresh(t, c2)
	want = subnetHeader + subnetLines(nodeA, 251, 251) + subnetLines(nodeB, 251, 251) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 251
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1b"} 251
`
	if err := compare(t, c2, want, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	if err := compare(t, c2, capacityHeader+"upgradeguard_node_ip_capacity{account=\"123456789012\",node=\"n1\",region=\"us-east-1\"} 27\n", "upgradeguard_node_ip_capacity"); err != nil {
		t.Errorf("Update: %v", err)
	}
}

// With ENI_CONFIG_LABEL_DEF a zone label, a new node takes the ENIConfig
// named by its zone: an ENIConfig of another name adds no space. With the
// default label the collector cannot tell which ENIConfig a new node takes
// and counts every one's subnet for its zone.
func TestPodSubnetsChosenByZone(t *testing.T) {
	f := newAWS(t)
	tag := map[string]string{ClusterTagPrefix + "demo": "owned"}
	must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: region + "a", Tags: tag}))
	podA := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.64.0/24", AZ: region + "a"}))
	spare := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.65.0/24", AZ: region + "a"}))
	// The ENIConfig named by zone a names podA; "batch" names spare, and
	// "us-east-1b" names a subnet of zone a (a mistake ipamd would refuse).
	misplaced := must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.66.0/24", AZ: region + "a"}))
	configs := []runtime.Object{eniConfig(region+"a", podA.ID), eniConfig("batch", spare.ID), eniConfig(region+"b", misplaced.ID)}
	zonePod := func(c *Collector) float64 {
		t.Helper()
		var got float64
		for _, s := range func() []subnet { c.mu.Lock(); defer c.mu.Unlock(); return c.podSubnets }() {
			got += s.available
		}
		return got
	}
	for _, tc := range []struct {
		name, labelDef string
		want           float64
	}{
		// Each /24: 251 free.
		{"zone label", "topology.kubernetes.io/zone", 251},
		{"legacy zone label", "failure-domain.beta.kubernetes.io/zone", 251},
		{"default label", "", 3 * 251},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []corev1.EnvVar{env(EnvCustomNetworking, "true")}
			if tc.labelDef != "" {
				env = append(env, corev1.EnvVar{Name: EnvENIConfigLabelDef, Value: tc.labelDef})
			}
			c := f.startCNI(t, Options{ClusterName: "demo"}, configs, awsNodeDS(1, env...))
			refresh(t, c)
			if got := zonePod(c); got != tc.want {
				t.Errorf("pod subnets of zone a hold %v free, want %v", got, tc.want)
			}
		})
	}
}
