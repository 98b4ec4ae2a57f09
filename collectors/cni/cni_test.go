package cni

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

const region = "us-east-1"

type fixture struct {
	srv  *awsfake.Server
	acct *awsfake.Account
	reqs *awsapi.Requests
}

func newAWS(t *testing.T) *fixture {
	t.Helper()
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	reqs, err := awsapi.NewRequests(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, acct: srv.Account(), reqs: reqs}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func node(name, itype, instanceID string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if itype != "" {
		n.Labels[kube.LabelInstanceType] = itype
	}
	if instanceID != "" {
		n.Spec.ProviderID = "aws:///" + region + "a/" + instanceID
	}
	return n
}

func pod(name, nodeName, ip string, phase corev1.PodPhase, hostNetwork bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: nodeName, HostNetwork: hostNetwork},
		Status:     corev1.PodStatus{Phase: phase, PodIP: ip},
	}
}

// start builds the collector on the fake AWS through the real EC2 client
// (budgeted and counted as in the exporter) and on synced informers.
func (f *fixture) start(t *testing.T, opts Options, objs ...runtime.Object) *Collector {
	t.Helper()
	client := fake.NewClientset(objs...)
	inf := kube.NewInformers(client, kube.Options{NodeLabels: nodes.Options{}.NodeLabels()}, slog.New(slog.DiscardHandler))
	opts.EC2 = ec2.NewFromConfig(f.srv.Config(region), func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, f.reqs.APIOptions(nil))
	})
	opts.Account, opts.Region = awsfake.DefaultAccountID, region
	opts.Nodes, opts.Pods = inf.Nodes(), inf.Pods()
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

func refresh(t *testing.T, c *Collector) {
	t.Helper()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
}

// compare checks the named metrics and returns Update's error.
func compare(t *testing.T, c *Collector, want string, names ...string) error {
	t.Helper()
	var updateErr error
	pc := collectors.AsPrometheus(c, func(err error) { updateErr = err })
	if err := testutil.CollectAndCompare(pc, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	return updateErr
}

const subnetHeader = `
# HELP upgradeguard_subnet_available_ips Free IPv4 addresses of a cluster subnet (AvailableIpAddressCount), as of the last AWS refresh.
# TYPE upgradeguard_subnet_available_ips gauge
# HELP upgradeguard_subnet_usable_ips IPv4 addresses of a cluster subnet that can ever be assigned: 2^(32-prefix) - 5, as AWS reserves five per subnet.
# TYPE upgradeguard_subnet_usable_ips gauge
# HELP upgradeguard_zone_available_ips Free IPv4 addresses of the cluster subnets of a role in a zone, summed, as of the last AWS refresh; a new node in the zone takes its addresses from these (its pods' from the pod subnets with custom networking).
# TYPE upgradeguard_zone_available_ips gauge
`

var subnetNames = []string{"upgradeguard_subnet_available_ips", "upgradeguard_subnet_usable_ips", "upgradeguard_zone_available_ips"}

func subnetLines(s awsfake.Subnet, available, usable int) string {
	return roleLines(s, RoleNode, available, usable)
}

func roleLines(s awsfake.Subnet, role string, available, usable int) string {
	l := fmt.Sprintf(`{account="123456789012",cidr=%q,region="us-east-1",role=%q,subnet_id=%q,vpc_id=%q,zone=%q}`, s.CIDR, role, s.ID, s.VPCID, s.AZ)
	return fmt.Sprintf("upgradeguard_subnet_available_ips%s %d\nupgradeguard_subnet_usable_ips%s %d\n", l, available, l, usable)
}

// clusterSubnets makes a tagged /24 in zone a holding one instance, a tagged
// /19 in zone b, a second tagged /24 in zone a and an untagged /24.
func (f *fixture) clusterSubnets(t *testing.T) (a24, b19, a24b, other awsfake.Subnet, inst awsfake.Instance) {
	t.Helper()
	tag := map[string]string{ClusterTagPrefix + "demo": "shared"}
	a24 = must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: region + "a", Tags: tag}))
	b19 = must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.32.0/19", AZ: region + "b", Tags: tag}))
	a24b = must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.1.0/24", AZ: region + "a", Tags: tag}))
	other = must[awsfake.Subnet](t)(f.acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.2.0/24", AZ: region + "c"}))
	inst = must[awsfake.Instance](t)(f.acct.AddInstance(awsfake.InstanceSpec{Type: "m5.large", Subnet: a24.ID, SecondaryIPs: 2}))
	return
}

func TestSubnetsByTagWithPagination(t *testing.T) {
	f := newAWS(t)
	a24, b19, a24b, _, _ := f.clusterSubnets(t)
	f.srv.SetPageSize(1, 1)
	c := f.start(t, Options{ClusterName: "demo"})
	refresh(t, c)
	// /24: 256 - 5 = 251 usable, 3 held by the instance's ENI; /19: 8192 - 5.
	want := subnetHeader + subnetLines(a24, 248, 251) + subnetLines(b19, 8187, 8187) + subnetLines(a24b, 251, 251) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 499
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1b"} 8187
`
	if err := compare(t, c, want, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	if n := f.srv.Calls("DescribeSubnets"); n < 3 {
		t.Errorf("DescribeSubnets called %d times for 3 subnets in pages of 1", n)
	}
}

func TestSubnetsByIDAndDeleted(t *testing.T) {
	f := newAWS(t)
	a24, _, _, other, _ := f.clusterSubnets(t)
	c := f.start(t, Options{SubnetIDs: []string{a24.ID, other.ID}, ClusterName: "ignored"})
	refresh(t, c)
	want := subnetHeader + subnetLines(a24, 248, 251) + subnetLines(other, 251, 251) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 248
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1c"} 251
`
	if err := compare(t, c, want, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}

	if err := f.acct.DeleteSubnet(other.ID); err != nil {
		t.Fatal(err)
	}
	refresh(t, c)
	want = subnetHeader + subnetLines(a24, 248, 251) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 248
`
	if err := compare(t, c, want, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
}

func TestSubnetsFromNodeInstances(t *testing.T) {
	f := newAWS(t)
	a24, b19, _, _, inst := f.clusterSubnets(t)
	inst2 := must[awsfake.Instance](t)(f.acct.AddInstance(awsfake.InstanceSpec{Type: "m5.large", Subnet: b19.ID}))
	f.srv.SetPageSize(1, 1)
	c := f.start(t, Options{},
		node("n1", "m5.large", inst.ID), node("n2", "m5.large", inst2.ID), node("kwok", "m5.large", ""))
	refresh(t, c)
	want := subnetHeader + subnetLines(a24, 248, 251) + subnetLines(b19, 8186, 8187) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 248
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1b"} 8186
`
	if err := compare(t, c, want, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}
	if n := f.srv.Calls("DescribeInstances"); n < 2 {
		t.Errorf("DescribeInstances called %d times for 2 instances in pages of 1", n)
	}
}

const capacityHeader = `
# HELP upgradeguard_node_ip_capacity Pod IPv4 addresses the VPC CNI can assign on the node: ENIs of the default network card times (addresses per ENI - 1), times 16 with prefix delegation, one ENI fewer with custom networking.
# TYPE upgradeguard_node_ip_capacity gauge
`

func TestNodeIPCapacity(t *testing.T) {
	// The catalogue's m5.large: 3 ENIs of 10 addresses, one card. A
	// two-card type whose default card has 4 of its 8 ENIs.
	multi := awsfake.InstanceType{
		Name: "zz.multi", VCPUs: 8, MaxENIs: 8, IPv4PerENI: 5,
		NetworkCards:       []awsfake.NetworkCard{{Index: 0, MaxENIs: 4}, {Index: 1, MaxENIs: 4}},
		DefaultNetworkCard: 1, Architectures: []string{"x86_64"}, Hypervisor: "nitro", CurrentGeneration: true,
	}
	for _, tc := range []struct {
		name          string
		pd, custom    bool
		large, multiC int
	}{
		{"plain", false, false, 3 * 9, 4 * 4},
		{"prefix delegation", true, false, 3 * 9 * 16, 4 * 4 * 16},
		{"custom networking", false, true, 2 * 9, 3 * 4},
		{"both", true, true, 2 * 9 * 16, 3 * 4 * 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newAWS(t)
			f.acct.AddInstanceType(multi)
			c := f.start(t, Options{Overrides: Overrides{PrefixDelegation: &tc.pd, CustomNetworking: &tc.custom}},
				node("large", "m5.large", ""), node("multi", "zz.multi", ""),
				node("unknown", "no.such", ""), node("unlabelled", "", ""))
			refresh(t, c)
			want := capacityHeader + fmt.Sprintf("upgradeguard_node_ip_capacity{account=\"123456789012\",node=\"large\",region=\"us-east-1\"} %d\nupgradeguard_node_ip_capacity{account=\"123456789012\",node=\"multi\",region=\"us-east-1\"} %d\n", tc.large, tc.multiC)
			if err := compare(t, c, want, "upgradeguard_node_ip_capacity"); err != nil {
				t.Errorf("Update: %v", err)
			}
		})
	}
}

func TestNodePodIPs(t *testing.T) {
	f := newAWS(t)
	c := f.start(t, Options{},
		node("n1", "m5.large", ""), node("n2", "no.such", ""), node("empty", "", ""),
		pod("running", "n1", "10.0.0.10", corev1.PodRunning, false),
		pod("pending-with-ip", "n1", "10.0.0.11", corev1.PodPending, false),
		pod("pending-no-ip", "n1", "", corev1.PodPending, false),
		pod("host", "n1", "10.0.0.5", corev1.PodRunning, true),
		pod("done", "n1", "10.0.0.12", corev1.PodSucceeded, false),
		pod("failed", "n1", "10.0.0.13", corev1.PodFailed, false),
		pod("other", "n2", "10.0.0.14", corev1.PodRunning, false),
		pod("unscheduled", "", "", corev1.PodPending, false),
	)
	refresh(t, c)
	want := `
# HELP upgradeguard_node_pod_ips Pods on the node that hold a VPC CNI address: with a pod IP, not hostNetwork, not Succeeded or Failed.
# TYPE upgradeguard_node_pod_ips gauge
upgradeguard_node_pod_ips{account="123456789012",node="empty",region="us-east-1"} 0
upgradeguard_node_pod_ips{account="123456789012",node="n1",region="us-east-1"} 2
upgradeguard_node_pod_ips{account="123456789012",node="n2",region="us-east-1"} 1
`
	if err := compare(t, c, want, "upgradeguard_node_pod_ips"); err != nil {
		t.Errorf("Update: %v", err)
	}
}

func TestAccessDeniedKeepsLastGoodSubnets(t *testing.T) {
	f := newAWS(t)
	a24, _, _, _, _ := f.clusterSubnets(t)
	c := f.start(t, Options{SubnetIDs: []string{a24.ID}}, node("n1", "m5.large", ""))
	refresh(t, c)
	want := subnetHeader + subnetLines(a24, 248, 251) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 248
`
	if err := compare(t, c, want, subnetNames...); err != nil {
		t.Errorf("Update: %v", err)
	}

	f.srv.Fail("DescribeSubnets", awsfake.Fault{Code: awsfake.Denied})
	must[awsfake.Instance](t)(f.acct.AddInstance(awsfake.InstanceSpec{Type: "m5.large", Subnet: a24.ID}))
	// A type change must still be seen: only the subnets are stale.
	f.acct.AddInstanceType(awsfake.InstanceType{Name: "m5.large", VCPUs: 2, MaxENIs: 4, IPv4PerENI: 10,
		Architectures: []string{"x86_64"}, Hypervisor: "nitro", CurrentGeneration: true})
	err := c.Refresh(context.Background())
	if awsapi.ErrorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("Refresh = %v, want UnauthorizedOperation", err)
	}
	err = compare(t, c, want, subnetNames...)
	if err == nil || !strings.Contains(err.Error(), "describing subnets") {
		t.Errorf("Update = %v, want the DescribeSubnets error", err)
	}
	if err := compare(t, c, capacityHeader+"upgradeguard_node_ip_capacity{account=\"123456789012\",node=\"n1\",region=\"us-east-1\"} 36\n", "upgradeguard_node_ip_capacity"); err == nil {
		t.Error("Update = nil while the subnets are stale")
	}

	f.srv.Clear()
	refresh(t, c)
	want = subnetHeader + subnetLines(a24, 247, 251) + `
upgradeguard_zone_available_ips{account="123456789012",region="us-east-1",role="node",zone="us-east-1a"} 247
`
	if err := compare(t, c, want, subnetNames...); err != nil {
		t.Errorf("Update after recovery: %v", err)
	}
}

func TestNoRefreshYet(t *testing.T) {
	f := newAWS(t)
	c := f.start(t, Options{}, node("n1", "m5.large", ""))
	err := compare(t, c, `
# HELP upgradeguard_node_pod_ips Pods on the node that hold a VPC CNI address: with a pod IP, not hostNetwork, not Succeeded or Failed.
# TYPE upgradeguard_node_pod_ips gauge
upgradeguard_node_pod_ips{account="123456789012",node="n1",region="us-east-1"} 0
`, append(subnetNames, "upgradeguard_node_ip_capacity", "upgradeguard_node_pod_ips")...)
	if err == nil {
		t.Error("Update = nil before any AWS refresh")
	}
	if f.srv.Calls("DescribeSubnets")+f.srv.Calls("DescribeInstances")+f.srv.Calls("DescribeInstanceTypes") != 0 {
		t.Errorf("Update called AWS: %v", f.srv.CallCounts())
	}
}

func TestLint(t *testing.T) {
	f := newAWS(t)
	f.clusterSubnets(t)
	c := f.start(t, Options{ClusterName: "demo"}, node("n1", "m5.large", ""),
		pod("p", "n1", "10.0.0.9", corev1.PodRunning, false))
	refresh(t, c)
	problems, err := testutil.CollectAndLint(collectors.AsPrometheus(c, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(collectors.AsPrometheus(c, nil)); n == 0 {
		t.Error("no metrics")
	}
}
