package awsfake

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func errorsAs[T any](err error, target *T) bool { return errors.As(err, target) }

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// probe is one operation of each service, called through the real client.
type probe struct {
	op   string // as Fail and Calls take it
	call func(c clients) error
}

var probes = []probe{
	{"ec2:DescribeInstances", func(c clients) error {
		_, err := c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		return err
	}},
	{"autoscaling:DescribeAutoScalingGroups", func(c clients) error {
		_, err := c.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
		return err
	}},
	{"elbv2:DescribeLoadBalancers", func(c clients) error {
		_, err := c.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{})
		return err
	}},
	{"elb:DescribeLoadBalancers", func(c clients) error {
		_, err := c.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{})
		return err
	}},
	{"sts:GetCallerIdentity", func(c clients) error {
		_, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	}},
	{"servicequotas:ListServiceQuotas", func(c clients) error {
		_, err := c.sq.ListServiceQuotas(ctx, &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String("ec2")})
		return err
	}},
}

// TestFaultsSurfaceAsEachServiceDoes checks, per service, the code and HTTP
// status the SDK sees for the generic faults, and how its standard retryer
// (3 attempts) treats them.
func TestFaultsSurfaceAsEachServiceDoes(t *testing.T) {
	want := map[string]map[string]struct {
		code   string
		status int
	}{
		Throttle: {
			"ec2": {"RequestLimitExceeded", 503}, "autoscaling": {"Throttling", 400}, "elbv2": {"Throttling", 400},
			"elb": {"Throttling", 400}, "sts": {"Throttling", 400}, "servicequotas": {"TooManyRequestsException", 429},
		},
		Denied: {
			"ec2": {"UnauthorizedOperation", 403}, "autoscaling": {"AccessDenied", 403}, "elbv2": {"AccessDenied", 403},
			"elb": {"AccessDenied", 403}, "sts": {"AccessDenied", 403}, "servicequotas": {"AccessDeniedException", 403},
		},
		Internal: {
			"ec2": {"InternalError", 500}, "autoscaling": {"InternalFailure", 500}, "elbv2": {"InternalFailure", 500},
			"elb": {"InternalFailure", 500}, "sts": {"InternalFailure", 500}, "servicequotas": {"ServiceException", 500},
		},
	}
	srv, c := start(t)
	for _, fault := range []string{Throttle, Denied, Internal} {
		for _, p := range probes {
			svc := p.op[:len(p.op)-len(opName(p.op))-1]
			srv.ResetCalls()
			srv.Fail(p.op, Fault{Code: fault})
			err := p.call(c)
			srv.Clear()
			w := want[fault][svc]
			if apiCode(err) != w.code || httpStatus(err) != w.status {
				t.Errorf("%s on %s: code %q status %d, want %q %d (%v)", fault, p.op, apiCode(err), httpStatus(err), w.code, w.status, err)
			}
			attempts := 3
			if fault == Denied {
				attempts = 1
			}
			if n := srv.Calls(p.op); n != attempts {
				t.Errorf("%s on %s: %d attempts, want %d", fault, p.op, n, attempts)
			}
		}
	}
}

func opName(op string) string {
	for i := len(op) - 1; i >= 0; i-- {
		if op[i] == ':' {
			return op[i+1:]
		}
	}
	return op
}

func TestRetryerRecoversFromThrottling(t *testing.T) {
	srv, c := start(t)
	for _, p := range probes {
		srv.ResetCalls()
		// Two throttles, then success: the SDK's third attempt gets through.
		srv.Fail(opName(p.op), Fault{Code: Throttle, Times: 2})
		if err := p.call(c); err != nil {
			t.Errorf("%s after two throttles: %v", p.op, err)
		}
		if n := srv.Calls(p.op); n != 3 {
			t.Errorf("%s: %d calls, want 3", p.op, n)
		}
		// The fault is used up.
		if err := p.call(c); err != nil || srv.Calls(p.op) != 4 {
			t.Errorf("%s after the fault ran out: %v, %d calls", p.op, err, srv.Calls(p.op))
		}
	}
}

func TestFaultDetails(t *testing.T) {
	srv, c := start(t)
	// Explicit codes and statuses pass through verbatim.
	srv.Fail("DescribeSubnets", Fault{Code: "AccessDenied", Status: 403, Message: "no subnets for you"})
	_, err := c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{})
	if apiCode(err) != "AccessDenied" || httpStatus(err) != 403 {
		t.Errorf("explicit fault: %v", err)
	}
	srv.Fail("DescribeVolumes", Fault{Code: "RequestLimitExceeded"})
	_, err = c.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{})
	if apiCode(err) != "RequestLimitExceeded" || httpStatus(err) != 503 {
		t.Errorf("EC2 throttle by name: %v", err)
	}
	srv.Clear("DescribeSubnets")
	if _, err := c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{}); err != nil {
		t.Errorf("after Clear: %v", err)
	}
	if _, err := c.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{}); err == nil {
		t.Errorf("Clear of another operation cleared this one")
	}

	// A qualified fault hits one service only.
	srv.Fail("elb:DescribeLoadBalancers", Fault{Code: Denied})
	if _, err := c.elbv2.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{}); err != nil {
		t.Errorf("elbv2 hit by an elb fault: %v", err)
	}
	if _, err := c.elb.DescribeLoadBalancers(ctx, &elb.DescribeLoadBalancersInput{}); apiCode(err) != "AccessDenied" {
		t.Errorf("elb fault: %v", err)
	}

	// Latency alone delays a successful answer; a short deadline gives up.
	srv.Fail("GetCallerIdentity", Fault{Latency: 80 * time.Millisecond})
	t0 := time.Now()
	if _, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil || time.Since(t0) < 80*time.Millisecond {
		t.Errorf("latency: %v after %v", err, time.Since(t0))
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c.sts.GetCallerIdentity(short, &sts.GetCallerIdentityInput{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("latency past the deadline: %v", err)
	}

	// EC2's DryRun answers DryRunOperation when the call would succeed.
	_, err = c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{DryRun: aws.Bool(true)})
	if apiCode(err) != "DryRunOperation" || httpStatus(err) != 412 {
		t.Errorf("DryRun: %v", err)
	}

	// Counting: every operation called, keyed service:Operation.
	counts := srv.CallCounts()
	if counts["ec2:DescribeSubnets"] != 3 || counts["sts:GetCallerIdentity"] != 2 || IAMAction("elbv2:DescribeLoadBalancers") != "elasticloadbalancing:DescribeLoadBalancers" {
		t.Errorf("counts %v", counts)
	}
}
