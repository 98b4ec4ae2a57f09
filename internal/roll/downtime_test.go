package roll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// fakeSlices is the sampler's EndpointSlice cache in tests: ready endpoint
// counts per Service, and an error standing for a cache not synced.
type fakeSlices struct {
	mu    sync.Mutex
	ready map[string]int // "namespace/name" -> ready endpoints
	err   error
}

func (f *fakeSlices) set(svc string, ready int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready[svc] = ready
}

func (f *fakeSlices) List() []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []any
	for k, n := range f.ready {
		ns, name, _ := strings.Cut(k, "/")
		s := &kube.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-abcde"}, Service: name, AddressType: "IPv4"}
		for i := range n {
			s.Endpoints = append(s.Endpoints, kube.Endpoint{Address: "10.0.0." + string(rune('1'+i)), Ready: true, Serving: true})
		}
		// A not-ready endpoint too: only ready ones count.
		s.Endpoints = append(s.Endpoints, kube.Endpoint{Address: "10.0.1.1"})
		out = append(out, s)
	}
	return out
}

func (f *fakeSlices) Healthy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }

func newTestSampler(src *fakeSlices, probes []gate.Probe) (*sampler, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
	return newSampler(src, DowntimeOptions{Probes: probes, Interval: time.Second}, clk.now, nil), clk
}

// A Service losing its only endpoint for N seconds gives N seconds in the
// report, one outage, a minimum of 0; the verdict names it.
func TestDowntimeServiceWithoutEndpoints(t *testing.T) {
	src := &fakeSlices{ready: map[string]int{"shop/cart": 1, "shop/web": 3}}
	s, clk := newTestSampler(src, nil)
	for sec := range 20 {
		switch sec {
		case 5:
			src.set("shop/cart", 0) // its pod on the drained node is evicted
			src.set("shop/web", 2)
		case 12:
			src.set("shop/cart", 1) // running again on the replacement
			src.set("shop/web", 3)
		}
		s.sampleEndpoints()
		clk.step(time.Second)
	}
	r := s.report("r1")
	if r.ZeroDowntime {
		t.Fatal("zero downtime with a Service 7s without endpoints")
	}
	cart := r.Services[0]
	if cart.Service != "cart" || cart.NoReadySeconds != 7 || cart.Outages != 1 || cart.MinReady != 0 || cart.MaxReady != 1 || cart.LongestOutageSeconds != 7 {
		t.Errorf("worst Service %+v; want shop/cart 7s without endpoints in 1 outage, min 0 max 1", cart)
	}
	if web := r.Services[1]; web.NoReadySeconds != 0 || web.MinReady != 2 {
		t.Errorf("shop/web %+v; want no downtime, min 2", web)
	}
	if v := r.Verdict(); !strings.Contains(v, "DOWNTIME") || !strings.Contains(v, "shop/cart: 7.0s in 1 outage") {
		t.Errorf("verdict %q; want DOWNTIME naming shop/cart and 7.0s", v)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| shop/cart | 7.0 | 1 | 7.0 | 0 | 1 | false |") || strings.Contains(md.String(), "| shop/web |") {
		t.Errorf("markdown lists the offenders only, with their numbers:\n%s", md.String())
	}
}

// A clean run says zero downtime; a Service never ready (scaled to zero)
// is listed, not counted.
func TestDowntimeClean(t *testing.T) {
	src := &fakeSlices{ready: map[string]int{"shop/cart": 2, "batch/idle": 0}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	s, clk := newTestSampler(src, []gate.Probe{{Name: "web", URL: srv.URL, ExpectStatus: []int{200}, Timeout: gate.Duration(time.Second)}})
	for range 10 {
		if clk.t.Second() == 4 {
			src.set("shop/cart", 1) // one of two replicas moving: still served
		}
		s.sampleEndpoints()
		s.probe(context.Background(), &s.probes[0])
		clk.step(time.Second)
	}
	r := s.report("r1")
	if !r.ZeroDowntime || !strings.HasPrefix(r.Verdict(), "zero downtime: 1 Service(s)") {
		t.Fatalf("verdict %q, report %+v; want zero downtime", r.Verdict(), r)
	}
	if r.Probes[0].Requests != 10 || r.Probes[0].Failed != 0 {
		t.Errorf("probe %+v; want 10 requests, none failed", r.Probes[0])
	}
	for _, sd := range r.Services {
		if sd.Service == "idle" && !sd.NeverReady {
			t.Errorf("batch/idle %+v; want never ready", sd)
		}
		if sd.Service == "cart" && sd.MinReady != 1 {
			t.Errorf("shop/cart %+v; want min 1", sd)
		}
	}
}

// A probe failing mid-roll: failed requests counted, the worst offender
// first, and the metrics say the same.
func TestDowntimeProbesWorstFirst(t *testing.T) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ok.Close()
	probes := []gate.Probe{
		{Name: "fine", URL: ok.URL, ExpectStatus: []int{200}, Timeout: gate.Duration(time.Second)},
		{Name: "dex", URL: srv.URL, ExpectStatus: []int{200}, Timeout: gate.Duration(time.Second)},
	}
	src := &fakeSlices{ready: map[string]int{"shop/cart": 1}}
	s, clk := newTestSampler(src, probes)
	for i := range 6 {
		failing.Store(i >= 2 && i < 5)
		s.sampleEndpoints()
		for j := range s.probes {
			s.probe(context.Background(), &s.probes[j])
		}
		clk.step(time.Second)
	}
	r := s.report("r1")
	if r.ZeroDowntime {
		t.Fatal("zero downtime with 3 failed probe requests")
	}
	if p := r.Probes[0]; p.Probe != "dex" || p.Failed != 3 || p.Requests != 6 || !strings.Contains(p.LastError, "503") {
		t.Errorf("worst probe %+v; want dex, 3 of 6 failed with 503", p)
	}
	if v := r.Verdict(); !strings.Contains(v, "1 probe(s) failing (worst dex: 3 failed, 0 timed out of 6)") {
		t.Errorf("verdict %q", v)
	}
	want := `
# HELP upgradeguard_roll_probe_requests_total Requests the roll sent to a probe of the gate policy, by outcome: ok, failed (unexpected status or error), timeout.
# TYPE upgradeguard_roll_probe_requests_total counter
upgradeguard_roll_probe_requests_total{outcome="failed",probe="dex"} 3
upgradeguard_roll_probe_requests_total{outcome="failed",probe="fine"} 0
upgradeguard_roll_probe_requests_total{outcome="ok",probe="dex"} 3
upgradeguard_roll_probe_requests_total{outcome="ok",probe="fine"} 6
upgradeguard_roll_probe_requests_total{outcome="timeout",probe="dex"} 0
upgradeguard_roll_probe_requests_total{outcome="timeout",probe="fine"} 0
# HELP upgradeguard_roll_service_no_ready_endpoints_seconds_total Seconds the Service had no ready endpoint during the roll, after it had one (sampled every --sample-interval).
# TYPE upgradeguard_roll_service_no_ready_endpoints_seconds_total counter
upgradeguard_roll_service_no_ready_endpoints_seconds_total{namespace="shop",service="cart"} 0
# HELP upgradeguard_roll_zero_downtime 1 while no Service lost its last ready endpoint, no probe failed and the endpoints were observed the whole roll; else 0.
# TYPE upgradeguard_roll_zero_downtime gauge
upgradeguard_roll_zero_downtime 0
`
	if err := testutil.CollectAndCompare(s, strings.NewReader(want), "upgradeguard_roll_probe_requests_total",
		"upgradeguard_roll_service_no_ready_endpoints_seconds_total", "upgradeguard_roll_zero_downtime"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(s); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// Time the cache could not be read is unobserved: never zero downtime.
func TestDowntimeUnobserved(t *testing.T) {
	src := &fakeSlices{ready: map[string]int{"shop/cart": 1}, err: errors.New("endpointslices informer has not synced yet")}
	s, clk := newTestSampler(src, nil)
	for i := range 5 {
		if i == 3 {
			src.mu.Lock()
			src.err = nil
			src.mu.Unlock()
		}
		clk.step(time.Second)
		s.sampleEndpoints()
	}
	r := s.report("r1")
	if r.ZeroDowntime || r.UnobservedSeconds != 4 || !strings.Contains(r.Verdict(), "unobserved for 4.0s (endpointslices informer has not synced yet)") {
		t.Errorf("report %+v verdict %q; want 4s unobserved, not zero downtime", r, r.Verdict())
	}
}

// The sampler's own loop samples on its ticker and stops with a last
// sample; the JSON has the documented fields.
func TestDowntimeLoopAndJSON(t *testing.T) {
	src := &fakeSlices{ready: map[string]int{"shop/cart": 0}}
	s := newSampler(src, DowntimeOptions{Interval: 10 * time.Millisecond}, time.Now, nil)
	src.set("shop/cart", 1)
	s.run(context.Background())
	time.Sleep(50 * time.Millisecond)
	src.set("shop/cart", 0)
	time.Sleep(50 * time.Millisecond)
	s.stop()
	s.nodeDone(NodeResult{Node: "n1", Replacement: "n2", Drain: 3 * time.Second, Total: 10 * time.Second})
	r := s.report("r1")
	if r.Samples < 3 || r.ZeroDowntime || !r.Services[0].NoReadyAtEnd {
		t.Fatalf("report %+v; want several samples, cart without endpoints at the end", r)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	node := m["nodes"].([]any)[0].(map[string]any)
	if node["drain_seconds"] != 3.0 || node["replacement"] != "n2" || m["zero_downtime"] != false {
		t.Errorf("JSON %s", buf.String())
	}
}

// The roll with Config.Downtime: its own EndpointSlice informer and probes,
// the report in the Result with every node's timings, the verdict printed,
// the numbers on the registry.
func TestRunDowntimeReport(t *testing.T) {
	c := rollCluster(t, 2)
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "cart-x1", Labels: map[string]string{discoveryv1.LabelServiceName: "cart"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if _, err := c.client.DiscoveryV1().EndpointSlices("shop").Create(context.Background(), slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	var out bytes.Buffer
	cfg := c.rollConfig(&script{}, &out)
	cfg.Registerer = reg
	cfg.Downtime = &DowntimeOptions{Interval: 5 * time.Millisecond,
		Probes: []gate.Probe{{Name: "web", URL: srv.URL, ExpectStatus: []int{200}, Timeout: gate.Duration(time.Second)}}}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	r := res.Downtime
	if r == nil || !r.ZeroDowntime || len(r.Nodes) != 2 || len(r.Services) != 1 || r.Services[0].MinReady != 1 || r.Probes[0].Requests == 0 {
		t.Fatalf("report %+v\n%s", r, out.String())
	}
	if !strings.Contains(out.String(), "zero downtime: 1 Service(s)") {
		t.Errorf("no verdict in the output:\n%s", out.String())
	}
	if n, err := testutil.GatherAndCount(reg, "upgradeguard_roll_node_step_duration_seconds"); err != nil || n != 14 {
		t.Errorf("%d node step series (%v), want 7 steps (deregister included) of 2 nodes", n, err)
	}
}

// Nothing to measure (no Service ever had a ready endpoint, no probe):
// the report does not claim zero downtime (the demo's roll, whose cluster
// has no Services, said "zero downtime: 0 Service(s)...").
func TestDowntimeNothingMeasured(t *testing.T) {
	src := &fakeSlices{ready: map[string]int{"batch/idle": 0}}
	s, clk := newTestSampler(src, nil)
	for range 5 {
		s.sampleEndpoints()
		clk.step(time.Second)
	}
	r := s.report("r1")
	if r.ZeroDowntime || !strings.HasPrefix(r.Verdict(), "downtime not measured: no Service had a ready endpoint in 5 samples") {
		t.Fatalf("verdict %q, zero downtime %v; want not measured", r.Verdict(), r.ZeroDowntime)
	}
}
