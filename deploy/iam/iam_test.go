// Package iam holds the exporter's IAM policy; its test runs every AWS
// collector's refresh against the fake AWS and fails when the code calls an
// operation the policy does not grant.
package iam

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/collectors/awsquota"
	"github.com/upgradeguard/upgradeguard/collectors/cni"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

type policy struct {
	Statement []struct {
		Effect   string
		Action   []string
		Resource string
	}
}

func granted(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("upgradeguard-exporter.json")
	if err != nil {
		t.Fatal(err)
	}
	var p policy
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("upgradeguard-exporter.json: %v", err)
	}
	var out []string
	for _, s := range p.Statement {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Action {
			if slices.Contains([]rune(a), '*') {
				t.Errorf("action %s: a read-only policy names its actions, no wildcards", a)
			}
			out = append(out, a)
		}
	}
	return out
}

func TestPolicyGrantsEveryCall(t *testing.T) {
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := srv.Account()
	tags := map[string]string{"kubernetes.io/cluster/prod": "owned"}
	sub, err := a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/20", AZ: "us-east-1a", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := a.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddASG(awsfake.ASGSpec{Name: "nodes", LaunchTemplate: lt.ID, Min: 1, Max: 3, Desired: 2, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddLaunchConfiguration(awsfake.LaunchConfiguration{Name: "legacy", InstanceType: "c5.large"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddASG(awsfake.ASGSpec{Name: "legacy", LaunchConfiguration: "legacy", Min: 0, Max: 1, Desired: 1, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}

	// A quota with no applied value makes the collector read AWS's default.
	a.ClearAppliedQuota("ec2", "L-1216C47A")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := srv.Config("us-east-1")
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}

	// cni reads the instance types of the nodes from the informers; with
	// prefix delegation it also reads the subnets' ENIs and CIDR
	// reservations.
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1",
		Labels: map[string]string{corev1.LabelInstanceTypeStable: "m5.large"}}})
	inf := kube.NewInformers(client, kube.Options{NodeLabels: nodes.Options{}.NodeLabels()}, slog.New(slog.DiscardHandler))
	prefixDelegation := true
	c := cni.New(cni.Options{EC2: ec2.NewFromConfig(cfg), Region: "us-east-1", ClusterName: "prod", Nodes: inf.Nodes(), Pods: inf.Pods(),
		Overrides: cni.Overrides{PrefixDelegation: &prefixDelegation}})
	inf.Start(ctx)
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	q := awsquota.New(awsquota.Options{Account: awsfake.DefaultAccountID, ClusterName: "prod",
		Regions: []awsquota.Region{{Name: "us-east-1", Clients: awsquota.Clients{
			EC2: ec2.NewFromConfig(cfg), AutoScaling: autoscaling.NewFromConfig(cfg),
			ELBv2: elasticloadbalancingv2.NewFromConfig(cfg), ELB: elasticloadbalancing.NewFromConfig(cfg),
			ServiceQuotas: servicequotas.NewFromConfig(cfg),
		}}}})
	for _, r := range append(c.Refreshers(), q.Refreshers()...) {
		if err := r.Refresh(ctx); err != nil {
			t.Fatalf("%s refresh: %v", r.Collector, err)
		}
	}

	allowed := granted(t)
	var called []string
	for key := range srv.CallCounts() {
		called = append(called, awsfake.IAMAction(key))
	}
	sort.Strings(called)
	for _, action := range called {
		if !slices.Contains(allowed, action) {
			t.Errorf("the exporter calls %s, which upgradeguard-exporter.json does not grant", action)
		}
	}
	// Minimal: every granted action is one the exporter calls.
	for _, action := range allowed {
		if !slices.Contains(called, action) {
			t.Errorf("upgradeguard-exporter.json grants %s, which no collector called", action)
		}
	}
}
