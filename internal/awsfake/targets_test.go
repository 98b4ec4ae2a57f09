package awsfake

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbv2types "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"
)

// A target's life through the real SDK: healthy, draining for the
// deregistration delay, then unused (Target.NotRegistered); a classic load
// balancer's instance InService, "deregistration currently in progress"
// while connection draining lasts, then InvalidInstance; a termination
// while registered is recorded.
func TestTargetHealthTransitions(t *testing.T) {
	srv, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := srv.Account()
	sub, err := a.AddSubnet(SubnetSpec{CIDR: "10.0.0.0/24", AZ: "us-east-1a"})
	if err != nil {
		t.Fatal(err)
	}
	i1, err := a.AddInstance(InstanceSpec{Type: "m5.large", Subnet: sub.ID})
	if err != nil {
		t.Fatal(err)
	}
	i2, err := a.AddInstance(InstanceSpec{Type: "m5.large", Subnet: sub.ID})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := a.AddTargetGroup(TargetGroup{Name: "web", Protocol: "TCP", Port: 30080, DeregistrationDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddClassicLoadBalancer("api", []string{sub.ID}, []string{i1.ID, i2.ID}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetConnectionDraining("api", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := a.RegisterTargets(tg.ARN, i1.ID, i2.ID); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := srv.Config("us-east-1")
	v2 := elasticloadbalancingv2.NewFromConfig(cfg)
	v1 := elasticloadbalancing.NewFromConfig(cfg)
	state := func() string {
		t.Helper()
		out, err := v2.DescribeTargetHealth(ctx, &elasticloadbalancingv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg.ARN),
			Targets: []elbv2types.TargetDescription{{Id: aws.String(i1.ID)}}})
		if err != nil || len(out.TargetHealthDescriptions) != 1 {
			t.Fatalf("%+v %v", out, err)
		}
		h := out.TargetHealthDescriptions[0].TargetHealth
		return string(h.State) + "/" + string(h.Reason)
	}
	classic := func() string {
		t.Helper()
		out, err := v1.DescribeInstanceHealth(ctx, &elasticloadbalancing.DescribeInstanceHealthInput{LoadBalancerName: aws.String("api"),
			Instances: []elbtypes.Instance{{InstanceId: aws.String(i1.ID)}}})
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		if err != nil || len(out.InstanceStates) != 1 {
			t.Fatalf("%+v %v", out, err)
		}
		return aws.ToString(out.InstanceStates[0].State) + "/" + aws.ToString(out.InstanceStates[0].Description)
	}
	if s := state(); s != "healthy/" {
		t.Errorf("registered: %s", s)
	}
	if s := classic(); s != "InService/N/A" {
		t.Errorf("classic registered: %s", s)
	}
	if err := a.DeregisterTargets(tg.ARN, i1.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.DeregisterFromClassic("api", i1.ID); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != "draining/Target.DeregistrationInProgress" {
		t.Errorf("deregistered: %s", s)
	}
	if s := classic(); s != "InService/Instance deregistration currently in progress." {
		t.Errorf("classic deregistered: %s", s)
	}
	time.Sleep(150 * time.Millisecond)
	if s := state(); s != "unused/Target.NotRegistered" {
		t.Errorf("after the delay: %s", s)
	}
	if s := classic(); s != "InvalidInstance" {
		t.Errorf("classic after the draining: %s", s)
	}
	all, err := v2.DescribeTargetHealth(ctx, &elasticloadbalancingv2.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg.ARN)})
	if err != nil || len(all.TargetHealthDescriptions) != 1 || aws.ToString(all.TargetHealthDescriptions[0].Target.Id) != i2.ID {
		t.Errorf("all targets: %+v %v; want only %s", all, err, i2.ID)
	}
	if err := a.TerminateInstance(i1.ID); err != nil {
		t.Fatal(err)
	}
	if cuts := a.TrafficCuts(); len(cuts) != 0 {
		t.Errorf("a drained instance's termination recorded as a cut: %+v", cuts)
	}
	if err := a.TerminateInstance(i2.ID); err != nil {
		t.Fatal(err)
	}
	if cuts := a.TrafficCuts(); len(cuts) != 2 || cuts[0].State != "healthy" || cuts[1].LoadBalancer != "api" {
		t.Errorf("cuts %+v; want the target group's and the classic load balancer's", cuts)
	}
	if id, alive, ok := a.Route(tg.ARN); !ok || alive || id != i2.ID {
		t.Errorf("route %s %v %v: the terminated target still gets new connections within the health check grace", id, alive, ok)
	}
}
