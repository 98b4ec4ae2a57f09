// Package awsapi is what every AWS collector shares: one request budget per
// account and region (so the exporter never competes with the VPC CNI for
// EC2's request limits), the count of requests by outcome, and the
// background refresh loop that keeps the last good values and says how old
// they are.
package awsapi

import (
	"context"
	"errors"
	"strings"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Budgets hands out one token bucket per account and region.
type Budgets struct {
	rps   rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// NewBudgets returns budgets of rps requests per second with the given burst
// for each account and region.
func NewBudgets(rps float64, burst int) *Budgets {
	return &Budgets{rps: rate.Limit(rps), burst: max(1, burst), m: map[string]*rate.Limiter{}}
}

// For returns the budget of an account and region.
func (b *Budgets) For(account, region string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := account + "/" + region
	l, ok := b.m[key]
	if !ok {
		l = rate.NewLimiter(b.rps, b.burst)
		b.m[key] = l
	}
	return l
}

// Requests counts AWS API requests by account, region, service, operation
// and outcome.
type Requests struct {
	total *prometheus.CounterVec
	// account is the account label of the requests counted (ForAccount);
	// the region comes from each request.
	account string
}

// NewRequests registers upgradeguard_aws_api_requests_total on reg.
func NewRequests(reg prometheus.Registerer) (*Requests, error) {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upgradeguard_aws_api_requests_total",
		Help: "AWS API requests the exporter made, by account and region (account empty before it is known: the STS call that finds it), service, operation and outcome (ok, or the AWS error code such as RequestLimitExceeded or AccessDenied).",
	}, []string{"account", "region", "service", "operation", "code"})
	if err := reg.Register(total); err != nil {
		return nil, err
	}
	return &Requests{total: total}, nil
}

// ForAccount returns the Requests that count the requests of an account in
// the same counter.
func (r *Requests) ForAccount(account string) *Requests {
	if r == nil {
		return nil
	}
	return &Requests{total: r.total, account: account}
}

// ErrorCode is the label value for the outcome of a request: "ok", the AWS
// error code, "canceled", or "transport" for errors without an AWS code.
func ErrorCode(err error) string {
	var ae smithy.APIError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ae) && ae.ErrorCode() != "":
		return ae.ErrorCode()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "transport"
	}
}

// IsThrottle tells AWS's throttling error codes.
func IsThrottle(err error) bool {
	switch c := ErrorCode(err); c {
	case "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
		"RequestThrottled", "RequestThrottledException", "SlowDown", "EC2ThrottledException":
		return true
	default:
		return strings.HasSuffix(c, "Throttled")
	}
}

// APIOptions returns the SDK client option that makes every attempt
// (retries included) wait for the budget and be counted. Add it to a
// client's APIOptions.
func (r *Requests) APIOptions(budget *rate.Limiter) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		// After the retry middleware, so that each attempt is budgeted and
		// counted, not just each call.
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("upgradeguardBudget",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if budget != nil {
					if err := budget.Wait(ctx); err != nil {
						return middleware.FinalizeOutput{}, middleware.Metadata{}, err
					}
				}
				out, md, err := next.HandleFinalize(ctx, in)
				if r != nil {
					r.total.WithLabelValues(r.account, awsmiddleware.GetRegion(ctx), awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), ErrorCode(err)).Inc()
				}
				return out, md, err
			}), "Retry", middleware.After)
	}
}
