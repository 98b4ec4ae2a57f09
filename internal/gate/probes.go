package gate

// Probes: HTTP(S) endpoints the gate requests itself at each evaluation -
// the API server's /readyz, an OIDC provider's discovery document, an
// ingress host - so that "working" is what a client sees, not only what
// the metrics say.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func init() {
	registerCheck(checkDef{
		Name:  "probes",
		Order: 80,
		Defaults: func(p *Policy) {
			for i := range p.Probes {
				if len(p.Probes[i].ExpectStatus) == 0 {
					p.Probes[i].ExpectStatus = []int{http.StatusOK}
				}
				if p.Probes[i].Timeout == 0 {
					p.Probes[i].Timeout = Duration(5 * time.Second)
				}
			}
		},
		Validate: validateProbes,
		Run:      (*Gate).checkProbes,
	})
}

// Probe is an HTTP(S) GET the gate sends at each evaluation: row
// probe/<name>. An answer with an expected status passes; any other
// status, a refused connection, a DNS or TLS failure is FAIL; no answer
// within the timeout is UNKNOWN. Redirects are not followed (expect their
// status to accept them), and every request opens a new connection, as a
// new client would.
type Probe struct {
	Name string `yaml:"name"`
	// URL is http:// or https://.
	URL string `yaml:"url"`
	// ExpectStatus lists the statuses that pass (default [200]).
	ExpectStatus []int `yaml:"expect_status"`
	// Timeout of the whole request (default 5s).
	Timeout Duration `yaml:"timeout"`
	// CAFile is a PEM bundle to verify the server's certificate with,
	// instead of the system's roots.
	CAFile string `yaml:"ca_file"`
	// Headers are sent with the request ("Host" sets the virtual host,
	// e.g. to ask an ingress for one host through its load balancer's
	// address).
	Headers map[string]string `yaml:"headers"`

	client *http.Client
}

func validateProbes(p *Policy, bad func(field, format string, args ...any)) {
	names := map[string]bool{}
	for i := range p.Probes {
		pr := &p.Probes[i]
		field := fmt.Sprintf("probes[%d]", i)
		switch {
		case pr.Name == "":
			bad(field+".name", "missing")
		case names[pr.Name]:
			bad(field+".name", "%q used twice", pr.Name)
		}
		names[pr.Name] = true
		u, err := url.Parse(pr.URL)
		switch {
		case pr.URL == "":
			bad(field+".url", "missing")
		case err != nil:
			bad(field+".url", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			bad(field+".url", "%q; want http:// or https:// and a host", pr.URL)
		}
		for _, st := range pr.ExpectStatus {
			if st < 100 || st > 599 {
				bad(field+".expect_status", "%d is not an HTTP status", st)
			}
		}
		if pr.Timeout <= 0 {
			bad(field+".timeout", "%s; want a positive duration", pr.Timeout)
		}
		for k := range pr.Headers {
			if k == "" || strings.ContainsAny(k, " :\r\n") {
				bad(field+".headers", "bad header name %q", k)
			}
		}
		client, err := probeClient(pr.CAFile)
		if err != nil {
			bad(field+".ca_file", "%v", err)
			continue
		}
		pr.client = client
	}
}

// probeClient returns a client that verifies servers with the roots in
// caFile (the system's when empty), never reuses a connection and never
// follows a redirect.
func probeClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	tr.Proxy = nil // probe the endpoint itself, as a cluster client would
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// checkProbes requests every probe of the policy, concurrently.
func (g *Gate) checkProbes(ctx context.Context, _ *evalState) []CheckResult {
	out := make([]CheckResult, len(g.policy.Probes))
	var wg sync.WaitGroup
	for i := range g.policy.Probes {
		wg.Go(func() { out[i] = g.policy.Probes[i].Run(ctx) })
	}
	wg.Wait()
	return out
}

// Run requests the probe once and returns its row: Pass on an expected
// status, Fail on another status or a connection, DNS or TLS error, Unknown
// when no answer came within the timeout. The roll's downtime sampler
// (internal/roll/downtime.go) calls it too.
func (pr *Probe) Run(ctx context.Context) CheckResult {
	want := make([]string, len(pr.ExpectStatus))
	for i, st := range pr.ExpectStatus {
		want[i] = strconv.Itoa(st)
	}
	r := CheckResult{Name: "probe/" + pr.Name, Query: "GET " + pr.URL,
		Threshold: "status " + strings.Join(want, " or ") + " within " + pr.Timeout.String()}
	client := pr.client
	if client == nil { // a Probe not validated, as in a hand-built Policy
		var err error
		if client, err = probeClient(pr.CAFile); err != nil {
			r.Status, r.Why = Unknown, "ca_file: "+err.Error()
			return r
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(pr.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.URL, nil)
	if err != nil {
		r.Status, r.Why = Fail, err.Error()
		return r
	}
	for k, v := range pr.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "upgradeguard-gate")
	began := time.Now()
	resp, err := client.Do(req)
	took := time.Since(began).Round(time.Millisecond)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			r.Status, r.Value = Unknown, "no answer"
			r.Why = fmt.Sprintf("no answer within %s: a slow endpoint or an unreachable network, not known to be down", pr.Timeout)
			return r
		}
		r.Status, r.Value, r.Why = Fail, "error", err.Error()
		return r
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	r.Value = fmt.Sprintf("%d in %s", resp.StatusCode, took)
	if slices.Contains(pr.ExpectStatus, resp.StatusCode) {
		r.Status = Pass
		return r
	}
	r.Status, r.Why = Fail, fmt.Sprintf("answered %s", resp.Status)
	return r
}
