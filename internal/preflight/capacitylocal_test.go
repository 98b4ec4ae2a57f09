package preflight

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// TestCapacityFromAWS runs the exporter's cni and awsquota collectors once
// against the fake AWS account (the real SDK on its wire protocols): a /28
// subnet is too small for an m5.large surge node, a /24 has room, and the
// quotas are read.
func TestCapacityFromAWS(t *testing.T) {
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	acct := srv.Account()
	tags := map[string]string{"kubernetes.io/cluster/prod": "owned"}
	var subnets []string
	for _, s := range []awsfake.SubnetSpec{{CIDR: "10.1.0.0/28", AZ: "eu-west-1a", Tags: tags}, {CIDR: "10.1.1.0/24", AZ: "eu-west-1b", Tags: tags}} {
		sub, err := acct.AddSubnet(s)
		if err != nil {
			t.Fatal(err)
		}
		subnets = append(subnets, sub.ID)
	}
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.AddASG(awsfake.ASGSpec{Name: "nodes", LaunchTemplate: lt.ID, Min: 1, Max: 3, Desired: 1, Subnets: subnets, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := CapacityFromAWS(ctx, LocalCapacity{Kube: fake.NewClientset(), AWS: srv.Config("eu-west-1"), ClusterName: "prod"})
	if d.QuotaErr != nil || d.IPErr != nil {
		t.Fatalf("errors: quotas %v, IPs %v", d.QuotaErr, d.IPErr)
	}
	fs := JudgeCapacity(d)
	by := findingsBy(fs)
	if f, ok := by["blocker zone eu-west-1a"]; !ok || !strings.Contains(f.Message, "a surge node takes 20") || !strings.Contains(f.Source, "(AWS)") {
		t.Errorf("zone a: %+v, %v\n%+v", f, ok, fs)
	}
	if _, ok := by["info zone eu-west-1b"]; !ok {
		t.Errorf("zone b: %+v", fs)
	}
	if f, ok := by["info AWS quotas"]; !ok || strings.HasPrefix(f.Message, "0 ") {
		t.Errorf("quotas: %+v, %v", f, ok)
	}

	// AWS unreachable: unknown, never clean.
	bad := srv.Config("eu-west-1")
	bad.BaseEndpoint = func() *string { s := "http://127.0.0.1:1"; return &s }()
	bad.RetryMaxAttempts = 1
	d = CapacityFromAWS(ctx, LocalCapacity{Kube: fake.NewClientset(), AWS: bad, ClusterName: "prod"})
	if r := (Report{Findings: JudgeCapacity(d)}); r.Count(Unknown) != 2 {
		t.Errorf("unreachable AWS: %+v", r.Findings)
	}
}

// TestCapacityFromAWSNodeCapacity: without an Auto Scaling group (Karpenter,
// or groups not tagged for the cluster) the surge addresses are the largest
// upgradeguard_node_ip_capacity, which the cni collector computes from each
// node's instance type label: the node informer must keep that label, as the
// exporter's does. An m5.large (3 ENIs of 10 addresses) gives 27.
func TestCapacityFromAWSNodeCapacity(t *testing.T) {
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	tags := map[string]string{"kubernetes.io/cluster/prod": "owned"}
	if _, err := srv.Account().AddSubnet(awsfake.SubnetSpec{CIDR: "10.1.1.0/24", AZ: "eu-west-1b", Tags: tags}); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelInstanceTypeStable: "m5.large"}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := CapacityFromAWS(ctx, LocalCapacity{Kube: fake.NewClientset(node), AWS: srv.Config("eu-west-1"), ClusterName: "prod"})
	if d.IPErr != nil || d.SurgeIPs == nil || *d.SurgeIPs != 27 {
		t.Fatalf("surge addresses %v (want 27), error %v", d.SurgeIPs, d.IPErr)
	}
}
