package preflight

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Querier runs instant PromQL queries; QueryClient is the real one, tests
// may give their own.
type Querier interface {
	// Query returns the instant vector of query now. An answer that is not
	// a whole vector (an error, a warning such as a missing store, another
	// result type) is an error: preflight never judges from part of the
	// data.
	Query(ctx context.Context, query string) (model.Vector, error)
}

// QueryClient asks Thanos Query or Prometheus through client_golang's API
// client. Against Thanos it asks for deduplicated data
// (dedup=true) and no partial responses (partial_response=false), so a
// store that does not answer turns the query into an error; Prometheus
// ignores both parameters.
//
// This is a small client of its own rather than internal/gate's, whose
// client is unexported and judges partial responses store by store for the
// gate's checks.
type QueryClient struct {
	api     promv1.API
	url     string
	timeout time.Duration
}

// NewQueryClient makes a client of url (the part before /api/v1) with the
// Prometheus-style HTTP client configuration (TLS, authorization, headers)
// and a timeout per query.
func NewQueryClient(url string, hc config.HTTPClientConfig, timeout time.Duration) (*QueryClient, error) {
	rt, err := config.NewRoundTripperFromConfig(hc, "upgradeguard-preflight")
	if err != nil {
		return nil, fmt.Errorf("query HTTP configuration: %w", err)
	}
	c, err := api.NewClient(api.Config{Address: strings.TrimRight(url, "/"), RoundTripper: thanosParams{rt}})
	if err != nil {
		return nil, fmt.Errorf("--query.url %q: %w", url, err)
	}
	return &QueryClient{api: promv1.NewAPI(c), url: url, timeout: timeout}, nil
}

// thanosParams adds Thanos Query's dedup and partial_response parameters
// to every request.
type thanosParams struct{ next http.RoundTripper }

func (t thanosParams) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Set("dedup", "true")
	q.Set("partial_response", "false")
	r.URL.RawQuery = q.Encode()
	return t.next.RoundTrip(r)
}

// Query implements Querier.
func (c *QueryClient) Query(ctx context.Context, query string) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v, warnings, _, err := c.api.Query(ctx, query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %s at %s: %w", query, c.url, err)
	}
	if len(warnings) > 0 {
		return nil, fmt.Errorf("query %s at %s: partial answer: %s", query, c.url, strings.Join(warnings, "; "))
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s at %s: result type %s, want a vector", query, c.url, v.Type())
	}
	return vec, nil
}
