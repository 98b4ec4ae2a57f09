// Package hold_test checks gate hold's deploy files: its IAM policy grants
// every AWS call the hold makes and nothing else, and lets it cancel only
// the instance refreshes of Auto Scaling groups tagged with the cluster's
// tag; its RBAC grants every Kubernetes request the hold makes through a
// hold and a release, and nothing it does not make.
package hold_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/hold"
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

// allows evaluates the policy for an action on a group with these tags, as
// IAM would for the statements' shapes used here (Allow, Resource "*" or
// the group ARN pattern, a Null condition on aws:ResourceTag).
func allows(stmts []statement, action, cluster string, tags map[string]string) bool {
	for _, s := range stmts {
		if s.Effect != "Allow" || !slices.Contains(s.Action, action) {
			continue
		}
		ok := true
		for op, kv := range s.Condition {
			for k, v := range kv {
				key := strings.ReplaceAll(strings.TrimPrefix(k, "aws:ResourceTag/"), "CLUSTER_NAME", cluster)
				_, has := tags[key]
				if op == "Null" && v == "false" {
					ok = ok && has
				} else {
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

// reasons is a failing evaluation, for the decisions below.
var failing = gate.Evaluation{Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Fail, Why: "a test alert"}}}

func TestPolicyGrantsEveryCallAndNothingElse(t *testing.T) {
	stmts := readPolicy(t)
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := srv.Account()
	a.SetTiming(awsfake.Timing{LaunchDelay: time.Minute})
	a.SetInstanceRefreshStep(10 * time.Millisecond)
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
	if _, err := a.StartInstanceRefresh("nodes", awsfake.InstanceRefreshSpec{}); err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Every decision the target acts on: WAIT (describe), STOP (cancel), GO.
	tgt := &hold.InstanceRefreshes{Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Groups: []string{"nodes"}}
	c, err := hold.New(hold.Config{Gate: nopGate{}, Targets: []hold.Target{tgt}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Reporter()
	for _, d := range []hold.Decision{
		{Action: hold.Hold, Verdict: gate.WAIT, Evaluation: failing},
		{Action: hold.Hold, Verdict: gate.STOP, Evaluation: failing},
		{Action: hold.Release, Verdict: gate.GO},
	} {
		if err := tgt.Apply(ctx, d, r); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Calls("CancelInstanceRefresh") != 1 {
		t.Fatalf("the hold made %d CancelInstanceRefresh calls, want 1", srv.Calls("CancelInstanceRefresh"))
	}
	holdAtLifecycleHook(t, ctx, srv, sub.ID, r)

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
		for _, act := range mutating {
			if slices.Contains(s.Action, act) && (len(s.Condition) == 0 || s.Resource == "*") {
				t.Errorf("statement %s grants %s without the cluster tag condition and a group ARN resource", s.Sid, act)
			}
		}
	}
	for _, act := range called {
		if !slices.Contains(granted, act) {
			t.Errorf("the hold calls %s, which iam-policy.json does not grant", act)
		}
	}
	for _, act := range granted {
		if !slices.Contains(called, act) {
			t.Errorf("iam-policy.json grants %s, which the hold never calls", act)
		}
	}
	for _, act := range mutating {
		if !allows(stmts, act, "prod", tags) {
			t.Errorf("%s is not allowed on the cluster's group", act)
		}
		if allows(stmts, act, "prod", groupTags["foreign"]) {
			t.Errorf("%s is allowed on another cluster's group", act)
		}
		if allows(stmts, act, "prod", nil) {
			t.Errorf("%s is allowed on an untagged group", act)
		}
	}
}

// mutating are the calls that change a group: allowed only on groups
// tagged with the cluster's tag.
var mutating = []string{"autoscaling:CancelInstanceRefresh", "autoscaling:PutLifecycleHook",
	"autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"}

// holdAtLifecycleHook runs the lifecycle hook target through a hold and a
// release: it creates the hook, keeps a scale-in's instance waiting
// (heartbeats), then takes its node out (the load balancer reads of the
// roll's code included) and completes the action.
func holdAtLifecycleHook(t *testing.T, ctx context.Context, srv *awsfake.Server, subnet string, r *hold.Reporter) {
	t.Helper()
	a := srv.Account()
	cfg := srv.Config("eu-west-1")
	if _, err := a.AddTargetGroup(awsfake.TargetGroup{Name: "k8s-web", Protocol: "TCP", Port: 30080}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddClassicLoadBalancer("k8s-api", []string{subnet}, nil); err != nil {
		t.Fatal(err)
	}
	g, _ := a.ASG("nodes")
	kube := fake.NewClientset()
	for i, id := range g.Instances {
		if _, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)},
			Spec: corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/" + id}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	asc := autoscaling.NewFromConfig(cfg)
	tgt := &hold.LifecycleHooks{
		Client: asc, Kube: kube, Groups: []string{"nodes"}, Create: true, HeartbeatTimeout: 30 * time.Second,
		TakeOut: roll.TakeOutOptions{Provider: &roll.AWS{AutoScaling: asc, ELBv2: elasticloadbalancingv2.NewFromConfig(cfg), ELB: elasticloadbalancing.NewFromConfig(cfg)},
			Deregistration: roll.DeregistrationOptions{Poll: 10 * time.Millisecond}},
	}
	if err := tgt.Apply(ctx, hold.Decision{Action: hold.Hold, Verdict: gate.WAIT, Evaluation: failing}, r); err != nil {
		t.Fatal(err)
	}
	if err := a.SetDesiredCapacity("nodes", 1); err != nil {
		t.Fatal(err)
	}
	if len(a.LifecycleActions("nodes")) != 1 {
		t.Fatalf("the scale-in did not wait at the hook: %+v", a.LifecycleActions("nodes"))
	}
	if err := tgt.Apply(ctx, hold.Decision{Action: hold.Hold, Verdict: gate.WAIT, Evaluation: failing}, r); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(a.LifecycleActions("nodes")) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the held instance was not released on GO")
		}
		if err := tgt.Apply(ctx, hold.Decision{Action: hold.Release, Verdict: gate.GO}, r); err != nil {
			t.Fatal(err)
		}
	}
	if ends := a.LifecycleEnds(); len(ends) != 1 || ends[0].How != "completed" {
		t.Fatalf("lifecycle actions: %+v", ends)
	}
}

type nopGate struct{}

func (nopGate) Evaluate(context.Context, string) (gate.Evaluation, error) { return failing, nil }
