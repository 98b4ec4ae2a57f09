// Package roll_test checks the roll's deploy files: its IAM policy grants
// every AWS call the roll makes and nothing else, and lets it change only
// the Auto Scaling groups tagged with the cluster's tag; its RBAC manifest
// parses and grants what the roll's Kubernetes calls need.
package roll_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

type statement struct {
	Sid       string
	Effect    string
	Action    []string
	Resource  string
	Condition map[string]map[string]string
}

func readPolicy(t *testing.T) []statement {
	t.Helper()
	b, err := os.ReadFile("iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Version   string
		Statement []statement
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("iam-policy.json: %v", err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("policy version %q", p.Version)
	}
	return p.Statement
}

// mutating are the actions that change a group: they must carry the tag
// condition.
var mutating = []string{"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
	"autoscaling:SuspendProcesses", "autoscaling:ResumeProcesses", "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"}

// tagging are the actions that write tags: only the roll's record.
var tagging = []string{"autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"}

// allows evaluates the policy for an action on a group with these tags
// (writing tagKeys, for the tagging actions), as IAM would for the
// statements' shapes used here (Allow, Resource "*" or the group ARN
// pattern, a Null condition on aws:ResourceTag, ForAllValues:StringEquals
// on aws:TagKeys).
func allows(stmts []statement, action, cluster string, tags map[string]string, tagKeys ...string) bool {
	for _, s := range stmts {
		if s.Effect != "Allow" || !slices.Contains(s.Action, action) {
			continue
		}
		ok := true
		for op, kv := range s.Condition {
			for k, v := range kv {
				key := strings.ReplaceAll(strings.TrimPrefix(k, "aws:ResourceTag/"), "CLUSTER_NAME", cluster)
				_, has := tags[key]
				switch {
				case op == "Null" && v == "false":
					ok = ok && has
				case op == "ForAllValues:StringEquals" && k == "aws:TagKeys":
					for _, tk := range tagKeys {
						ok = ok && tk == v
					}
				default:
					ok = false // a condition this test cannot evaluate
				}
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func TestPolicyGrantsEveryCallAndNothingElse(t *testing.T) {
	stmts := readPolicy(t)
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := srv.Account()
	tags := map[string]string{"kubernetes.io/cluster/prod": "owned"}
	sub, err := a.AddSubnet(awsfake.SubnetSpec{CIDR: "10.0.0.0/24", AZ: "eu-west-1a", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := a.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	groupTags := map[string]map[string]string{"nodes": tags, "foreign": {"kubernetes.io/cluster/other": "owned"}}
	for name, tg := range groupTags {
		if _, err := a.AddASG(awsfake.ASGSpec{Name: name, LaunchTemplate: lt.ID, Min: 1, Max: 4, Desired: 2, Subnets: []string{sub.ID}, Tags: tg}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := srv.Config("eu-west-1")
	p := &roll.AWS{AutoScaling: autoscaling.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg),
		ELBv2: elasticloadbalancingv2.NewFromConfig(cfg), ELB: elasticloadbalancing.NewFromConfig(cfg), ClusterName: "prod"}

	// Every method of the provider: the roll calls AWS through nothing else.
	var ids []string
	for _, i := range a.Instances() {
		ids = append(ids, i.ID)
	}
	insts, err := p.Describe(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 2 {
		t.Fatalf("described %d instances, want the cluster group's 2 (not the foreign group's)", len(insts))
	}
	var victims []roll.Instance
	for _, i := range insts {
		victims = append(victims, i)
	}
	// A Service's target group and classic load balancer with the first
	// node registered: the reads before its termination (loadbalancers.go).
	tg, err := a.AddTargetGroup(awsfake.TargetGroup{Name: "k8s-web", Protocol: "TCP", Port: 30080})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterTargets(tg.ARN, victims[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddClassicLoadBalancer("k8s-api", []string{sub.ID}, []string{victims[0].ID}); err != nil {
		t.Fatal(err)
	}
	if ts, err := p.LoadBalancerTargets(ctx, victims[0]); err != nil || len(ts) != 2 {
		t.Fatalf("load balancer targets %v, %v; want the target group and the classic one", ts, err)
	}
	if _, err := p.HoldProcesses(ctx, "nodes"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Surge(ctx, "nodes"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Group(ctx, "nodes"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Activities(ctx, "nodes", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(ctx, victims[0], true); err != nil {
		t.Fatal(err)
	}
	if err := p.Terminate(ctx, victims[1], false); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ReleaseProcesses(ctx, "nodes", nil); err != nil {
		t.Fatal(err)
	}
	// The provider refuses a group outside the cluster before AWS would.
	if _, err := p.Surge(ctx, "foreign"); err == nil {
		t.Error("surge of a group without the cluster's tag was not refused")
	}

	var called []string
	for key := range srv.CallCounts() {
		called = append(called, awsfake.IAMAction(key))
	}
	sort.Strings(called)
	var granted []string
	for _, s := range stmts {
		if s.Effect != "Allow" {
			t.Errorf("statement %s: %s; the policy only allows", s.Sid, s.Effect)
		}
		for _, act := range s.Action {
			if strings.Contains(act, "*") {
				t.Errorf("action %s: name each action, no wildcards", act)
			}
			granted = append(granted, act)
		}
		for _, m := range mutating {
			if slices.Contains(s.Action, m) && (len(s.Condition) == 0 || s.Resource == "*") {
				t.Errorf("statement %s grants %s without the cluster tag condition and a group ARN resource", s.Sid, m)
			}
		}
	}
	for _, act := range called {
		if !slices.Contains(granted, act) {
			t.Errorf("the roll calls %s, which iam-policy.json does not grant", act)
		}
	}
	for _, act := range granted {
		if !slices.Contains(called, act) {
			t.Errorf("iam-policy.json grants %s, which the roll never calls", act)
		}
	}
	for _, m := range tagging {
		if !allows(stmts, m, "prod", tags, roll.TagSuspended) {
			t.Errorf("%s of %s is not allowed on the cluster's group", m, roll.TagSuspended)
		}
		if allows(stmts, m, "prod", tags, "kubernetes.io/cluster/prod") || allows(stmts, m, "prod", tags, roll.TagSuspended, "team") {
			t.Errorf("%s of another tag key is allowed", m)
		}
	}
	for _, m := range mutating {
		if !allows(stmts, m, "prod", tags, roll.TagSuspended) {
			t.Errorf("%s is not allowed on the cluster's group", m)
		}
		if allows(stmts, m, "prod", groupTags["foreign"]) {
			t.Errorf("%s is allowed on another cluster's group", m)
		}
		if allows(stmts, m, "prod", nil) {
			t.Errorf("%s is allowed on an untagged group", m)
		}
	}
}
