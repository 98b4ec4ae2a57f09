package awsapi

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
)

// A throttling storm: every attempt, retries included, waits for the budget
// and is counted with its outcome; the calls succeed once the storm passes.
func TestBudgetAndCountsUnderThrottling(t *testing.T) {
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	reg := prometheus.NewRegistry()
	requests, err := NewRequests(reg)
	if err != nil {
		t.Fatal(err)
	}
	// 20 requests per second, no burst beyond one: 8 attempts take >= 350ms.
	budget := NewBudgets(20, 1).For(awsfake.DefaultAccountID, "eu-west-1")
	client := ec2.NewFromConfig(srv.Config("eu-west-1"), func(o *ec2.Options) {
		o.APIOptions = append(o.APIOptions, requests.APIOptions(budget))
	})
	srv.Fail("ec2:DescribeSubnets", awsfake.Fault{Code: "RequestLimitExceeded", Times: 2})

	ctx := context.Background()
	begin := time.Now()
	for range 6 {
		if _, err := client.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{}); err != nil {
			t.Fatalf("DescribeSubnets after the storm: %v", err)
		}
	}
	elapsed := time.Since(begin)
	// 2 throttled attempts (retried by the SDK) + 6 successful ones.
	if got := srv.Calls("ec2:DescribeSubnets"); got != 8 {
		t.Errorf("attempts reaching AWS = %d, want 8", got)
	}
	if elapsed < 350*time.Millisecond {
		t.Errorf("8 attempts took %s: the 20/s budget was not applied to each attempt", elapsed)
	}
	if v := testutil.ToFloat64(requests.total.WithLabelValues("", "eu-west-1", "EC2", "DescribeSubnets", "RequestLimitExceeded")); v != 2 {
		t.Errorf("throttled requests counted = %v, want 2", v)
	}
	if v := testutil.ToFloat64(requests.total.WithLabelValues("", "eu-west-1", "EC2", "DescribeSubnets", "ok")); v != 6 {
		t.Errorf("ok requests counted = %v, want 6", v)
	}
	if !IsThrottle(&fakeAPIError{"RequestLimitExceeded"}) || IsThrottle(&fakeAPIError{"AccessDenied"}) {
		t.Error("IsThrottle misclassifies")
	}
}

type fakeAPIError struct{ code string }

func (e *fakeAPIError) Error() string                 { return e.code }
func (e *fakeAPIError) ErrorCode() string             { return e.code }
func (e *fakeAPIError) ErrorMessage() string          { return e.code }
func (e *fakeAPIError) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }
