package gate

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// series is one series of the fake Prometheus.
type series struct {
	labels map[string]string
	value  string // as the API sends it: "1", "NaN", "+Inf"
}

func ser(value string, kv ...string) series {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return series{labels: l, value: value}
}

// fakeProm speaks enough of the Prometheus HTTP API for the gate: it
// answers selectors (optionally inside increase(...[w]) or
// max_over_time(...[w]), or with @ T, from the series named "increase:...",
// "max:..." and "at:..."; plain selectors from the others) from its series,
// exact queries from custom, and /api/v1/stores from stores.
type fakeProm struct {
	t *testing.T

	mu       sync.Mutex
	series   []series
	custom   map[string]string // query -> whole JSON body
	warnings []string
	stores   string // JSON of data; "" answers 404 as Prometheus does
	status   int    // forced HTTP status with an error body
	body     string // forced raw body
	delay    time.Duration
	requests []*http.Request
	forms    []map[string][]string
	srv      *httptest.Server
}

func newFake(t *testing.T) *fakeProm {
	f := &fakeProm{t: t, custom: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeProm) set(ss ...series) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.series = ss
}

var (
	increaseRE = regexp.MustCompile(`^increase\((.*)\[\w+\]\)$`)
	maxOverRE  = regexp.MustCompile(`^max_over_time\((.*)\[\w+\]\)$`)
	presentRE  = regexp.MustCompile(`^present_over_time\((.*)\[\w+\]\)$`)
	atRE       = regexp.MustCompile(`^(.*) @ \d+$`)
	selectorRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)?(\{.*\})?$`)
)

func (f *fakeProm) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	delay, status, body := f.delay, f.status, f.body
	f.requests = append(f.requests, r.Clone(r.Context()))
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":"error","errorType":"internal","error":"forced %d"}`, status)
		return
	}
	if body != "" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
		return
	}
	switch r.URL.Path {
	case "/api/v1/stores":
		f.mu.Lock()
		stores := f.stores
		f.mu.Unlock()
		if stores == "" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":%s}`, stores)
	case "/api/v1/query":
		if err := r.ParseForm(); err != nil {
			f.t.Errorf("fake: bad form: %v", err)
		}
		f.mu.Lock()
		f.forms = append(f.forms, r.Form)
		f.mu.Unlock()
		f.answer(w, r.Form.Get("query"))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeProm) answer(w http.ResponseWriter, q string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.custom[q]; ok {
		fmt.Fprint(w, b)
		return
	}
	type vs struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	res := []vs{}
	// "a or b": the union of the selectors (the fake's series never
	// collide).
	for _, part := range strings.Split(q, " or ") {
		ms, prefix, ok := f.parse(w, part)
		if !ok {
			return
		}
		for _, l := range f.match(ms, prefix) {
			res = append(res, vs{Metric: l, Value: [2]any{1700000000.0, l["\x00value"]}})
			delete(l, "\x00value")
		}
	}
	out := map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": res}}
	if len(f.warnings) > 0 {
		out["warnings"] = f.warnings
	}
	b, _ := json.Marshal(out)
	w.Write(b)
}

// parse parses one selector, optionally in increase(...[w]); it answers
// 400 and false when it cannot.
func (f *fakeProm) parse(w http.ResponseWriter, q string) ([]matcher, string, bool) {
	prefix := ""
	sel := q
	if m := increaseRE.FindStringSubmatch(q); m != nil {
		prefix, sel = "increase:", m[1]
	}
	if m := maxOverRE.FindStringSubmatch(q); m != nil {
		prefix, sel = "max:", m[1]
	}
	if m := presentRE.FindStringSubmatch(q); m != nil {
		prefix, sel = "present:", m[1]
	}
	if m := atRE.FindStringSubmatch(q); m != nil {
		prefix, sel = "at:", m[1]
	}
	m := selectorRE.FindStringSubmatch(sel)
	if m == nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"fake cannot parse %q"}`, q)
		return nil, "", false
	}
	var ms []matcher
	if m[2] != "" {
		var err error
		if ms, err = parseMatchers(m[2]); err != nil {
			f.t.Errorf("fake: query %q: %v", q, err)
		}
	}
	if m[1] != "" {
		ms = append(ms, matcher{name: "__name__", op: "=", value: m[1]})
	}
	return ms, prefix, true
}

// match returns the labels of the series matching ms (with prefix, the
// increase: series), each with its value under the key "\x00value".
func (f *fakeProm) match(ms []matcher, prefix string) []map[string]string {
	var res []map[string]string
	for _, s := range f.series {
		name := s.labels["__name__"]
		if prefix != "" {
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			name = strings.TrimPrefix(name, prefix)
		} else if strings.Contains(name, ":") {
			continue
		}
		l := map[string]string{}
		for k, v := range s.labels {
			l[k] = v
		}
		l["__name__"] = name
		ok := true
		for _, mm := range ms {
			if !mm.matches(l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		if prefix != "" && prefix != "at:" {
			delete(l, "__name__") // functions drop the name; @ does not
		}
		l["\x00value"] = s.value
		res = append(res, l)
	}
	return res
}

// healthy is a healthy cluster of three nodes in two zones, node-b under a
// PDB that does not block it.
func healthy() []series {
	j := func(value string, kv ...string) series {
		return ser(value, append(kv, "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod")...)
	}
	var ss []series
	ss = append(ss,
		ser("1", "__name__", "up", "job", "upgradeguard", "instance", "10.0.0.9:9741", "cluster", "prod"),
		j("1", "__name__", "upgradeguard_collector_success", "collector", "nodes"),
		j("1", "__name__", "upgradeguard_collector_success", "collector", "pdb"),
		j("1", "__name__", "upgradeguard_collector_success", "collector", "cni"),
		j("1", "__name__", "upgradeguard_collector_success", "collector", "awsquota"),
		j(strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10), "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "collector", "cni", "region", "eu-west-1"),
		j(strconv.FormatInt(time.Now().Add(-2*time.Minute).Unix(), 10), "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "collector", "awsquota_usage", "region", "eu-west-1"),
		j(strconv.FormatInt(time.Now().Add(-50*time.Minute).Unix(), 10), "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds", "collector", "awsquota_limits", "region", "eu-west-1"),
		j("120", "__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1a"),
		j("80", "__name__", "upgradeguard_zone_available_ips", "zone", "eu-west-1b"),
		j("18", "__name__", "upgradeguard_aws_asg_surge_ips", "account", "1", "region", "eu-west-1", "asg", "nodes-a"),
		j("10", "__name__", "upgradeguard_aws_asg_surge_ips", "account", "1", "region", "eu-west-1", "asg", "nodes-b"),
		j("0", "__name__", "upgradeguard_aws_surge_unresolved_groups", "account", "1", "region", "eu-west-1"),
	)
	q := []string{"account", "1", "region", "eu-west-1", "service", "ec2", "quota_code", "L-1216C47A", "quota_name", "Running On-Demand Standard instances"}
	ss = append(ss,
		j("64", append([]string{"__name__", "upgradeguard_aws_quota_limit"}, q...)...),
		j("40", append([]string{"__name__", "upgradeguard_aws_quota_usage"}, q...)...),
		j("8", append([]string{"__name__", "upgradeguard_aws_quota_surge_demand"}, q...)...),
	)
	for i, n := range []string{"node-a", "node-b", "node-c", "node-new"} {
		created := strconv.FormatInt(time.Now().Add(-48*time.Hour).Unix(), 10)
		if n == "node-new" {
			created = strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)
		}
		group := "nodes-a"
		if n == "node-c" || n == "node-new" {
			group = "nodes-b"
		}
		zone := "eu-west-1a"
		if i == 1 {
			zone = "eu-west-1b"
		}
		ss = append(ss,
			j("1", "__name__", "upgradeguard_node_ready", "node", n),
			j("12", "__name__", "upgradeguard_node_heartbeat_age_seconds", "node", n),
			j("40", "__name__", "upgradeguard_node_lease_duration_seconds", "node", n),
			j("0", "__name__", "increase:upgradeguard_node_ready_transitions_total", "node", n),
			j("1", "__name__", "upgradeguard_node_info", "node", n, "zone", zone, "nodegroup", group, "instance_id", "i-"+n),
			j("1", "__name__", "upgradeguard_aws_asg_instance_info", "account", "1", "region", "eu-west-1", "asg", "asg-"+group, "nodegroup", group,
				"instance_id", "i-"+n, "zone", zone, "lifecycle_state", "InService"),
			j(created, "__name__", "upgradeguard_aws_asg_instance_launch_time_seconds", "account", "1", "region", "eu-west-1", "asg", "asg-"+group, "instance_id", "i-"+n),
			j(created, "__name__", "upgradeguard_node_created_timestamp_seconds", "node", n),
			j("1", "__name__", "upgradeguard_node_drainable", "node", n),
			j("3", "__name__", "upgradeguard_node_evictable_pods", "node", n),
			j("0", "__name__", "upgradeguard_node_unmanaged_pods", "node", n),
			j("0", "__name__", "upgradeguard_node_local_storage_pods", "node", n),
		)
	}
	for _, group := range []string{"nodes-a", "nodes-b"} {
		ss = append(ss, j("2", "__name__", "upgradeguard_aws_asg_desired_capacity", "account", "1", "region", "eu-west-1", "asg", "asg-"+group, "nodegroup", group))
	}
	// What users reach (collectors/workloads, collectors/pdb): the
	// API server's Service, a Deployment behind a Service and its PDB, the
	// same in the window (max:).
	ss = append(ss, j("1", "__name__", "upgradeguard_collector_success", "collector", "workloads"))
	for _, pre := range []string{"", "max:"} {
		ss = append(ss,
			j("1", "__name__", pre+"upgradeguard_service_endpoints", "namespace", "default", "service", "kubernetes", "ready", "true"),
			j("3", "__name__", pre+"upgradeguard_service_endpoints", "namespace", "shop", "service", "web", "ready", "true"),
			j("3", "__name__", pre+"upgradeguard_deployment_status_replicas_available", "namespace", "shop", "deployment", "web"),
		)
	}
	ss = append(ss,
		j("0", "__name__", "upgradeguard_service_endpoints", "namespace", "default", "service", "kubernetes", "ready", "false"),
		j("0", "__name__", "upgradeguard_service_endpoints", "namespace", "shop", "service", "web", "ready", "false"),
		j("3", "__name__", "upgradeguard_deployment_spec_replicas", "namespace", "shop", "deployment", "web"),
		j("1", "__name__", "upgradeguard_deployment_strategy_max_unavailable", "namespace", "shop", "deployment", "web"),
		j("3", "__name__", "upgradeguard_pdb_current_healthy", "namespace", "shop", "pdb", "web"),
		j("2", "__name__", "upgradeguard_pdb_desired_healthy", "namespace", "shop", "pdb", "web"),
	)
	// Alerts that must not block: the bundle's watchdog, kube-prometheus'
	// Watchdog and InfoInhibitor, and an info alert.
	ss = append(ss,
		ser("1", "__name__", "ALERTS", "alertname", "UpgradeGuardWatchdog", "alertstate", "firing", "severity", "none", "cluster", "prod"),
		ser("1", "__name__", "ALERTS", "alertname", "Watchdog", "alertstate", "firing", "severity", "none", "cluster", "prod"),
		ser("1", "__name__", "ALERTS", "alertname", "InfoInhibitor", "alertstate", "firing", "severity", "none", "cluster", "prod"),
		ser("1", "__name__", "ALERTS", "alertname", "SomethingInfo", "alertstate", "firing", "severity", "info", "cluster", "prod"),
	)
	return ss
}

// replace sets the value of the series with these labels (a subset).
func replace(ss []series, value string, kv ...string) []series {
	want := ser("", kv...).labels
	out := make([]series, 0, len(ss))
	for _, s := range ss {
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
			}
		}
		if ok {
			if value == "" {
				continue // "" deletes
			}
			s.value = value
		}
		out = append(out, s)
	}
	return out
}

// thanosStores is /api/v1/stores of two Prometheus replicas' sidecars: as
// Thanos reports a sidecar, from its oldest sample to the end of time
// (math.MaxInt64).
const thanosStores = `{"sidecar":[
 {"name":"127.0.0.1:10901","lastCheck":"2026-01-01T00:00:00Z","lastError":%s,"labelSets":[{"cluster":"prod","replica":"r0"}],"minTime":1700000000000,"maxTime":9223372036854775807},
 {"name":"127.0.0.1:10902","lastCheck":"2026-01-01T00:00:00Z","lastError":%s,"labelSets":[{"cluster":"prod","replica":"r1"}],"minTime":1700000000000,"maxTime":9223372036854775807}]}`

func storesJSON(r0Err, r1Err string) string {
	q := func(s string) string {
		if s == "" {
			return "null"
		}
		return strconv.Quote(s)
	}
	return fmt.Sprintf(thanosStores, q(r0Err), q(r1Err))
}
