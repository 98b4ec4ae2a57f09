package gate

import (
	"context"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"
)

func TestServerErrorsAreUnknownAndUnreachable(t *testing.T) {
	for _, c := range []struct {
		name        string
		status      int
		body        string
		unreachable bool
		why         string
	}{
		{"HTTP 503", http.StatusServiceUnavailable, "", true, "HTTP 503, internal: forced 503"},
		{"HTTP 500", http.StatusInternalServerError, "", true, "HTTP 500"},
		{"malformed JSON", 0, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,`, true, "not the Prometheus API (malformed JSON)"},
		{"HTML from a proxy", 0, `<html>login</html>`, true, "not the Prometheus API"},
		{"no status", 0, `{"data":{}}`, true, "no status field"},
		{"value not a string", 0, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,1]}]}}`, true, "is not a string"},
		{"matrix", 0, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, false, `result type "matrix"`},
		{"HTTP 401", http.StatusUnauthorized, "", false, "check the credentials"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.status, f.body = c.status, c.body
			g, _ := newGate(t, f, testPolicy(t, ""), func(cfg *Config) { cfg.Kind = KindPrometheus })
			e := eval(t, g, "node-a")
			if e.Verdict == GO || e.Unreachable != c.unreachable {
				t.Errorf("verdict %s unreachable %v, want WAIT and %v", e.Verdict, e.Unreachable, c.unreachable)
			}
			for _, r := range e.Checks {
				if r.Status == Pass {
					t.Errorf("%s passed on a broken answer", r.Name)
				}
			}
			wantRow(t, e, "monitoring/up", Unknown, c.why)
		})
	}
}

func TestSlowAnswersTimeOut(t *testing.T) {
	f := newFake(t)
	f.set(healthy()...)
	f.delay = 3 * time.Second
	g, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) { c.Kind = KindPrometheus; c.QueryTimeout = 300 * time.Millisecond })
	began := time.Now()
	e := eval(t, g, "node-a")
	took := time.Since(began)
	t.Logf("evaluation took %s", took)
	if e.Verdict == GO || !e.Unreachable {
		t.Fatalf("verdict %s unreachable %v", e.Verdict, e.Unreachable)
	}
	wantRow(t, e, "monitoring/up", Unknown, "no answer from "+f.srv.URL+"/api/v1/query within the query timeout 300ms")
	// 7 queries, 4 at a time: two rounds of the timeout, each far below the delay.
	if took > 2500*time.Millisecond {
		t.Errorf("evaluation took %s with a 300ms query timeout", took)
	}
	// The caller's context ends the evaluation with an error.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	g2, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) { c.Kind = KindPrometheus; c.QueryTimeout = 10 * time.Second })
	b2 := time.Now()
	_, err := g2.Evaluate(ctx, "node-a")
	t.Logf("second took %s", time.Since(b2))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("evaluation past its context: %v", err)
	}
}

func TestPartialResponses(t *testing.T) {
	warnR1 := `fetch series for {cluster="prod", replica="r1"} Addr: 127.0.0.1:10902 MinTime: 0 MaxTime: 1: rpc error: code = Unavailable desc = connection refused`
	recvR1 := `receive series from Addr: 127.0.0.1:10902 MinTime: 0 MaxTime: 1: rpc error: code = Unavailable desc = EOF`
	for _, c := range []struct {
		name     string
		stores   string
		warnings []string
		goOK     bool
		why      string
	}{
		{"all stores up", storesJSON("", ""), nil, true, ""},
		{"r1 warned, r0 answered", storesJSON("", ""), []string{warnR1}, true, ""},
		{"r1 warned by address", storesJSON("", ""), []string{recvR1}, true, ""},
		{"r1 unhealthy in the store list, no warning", storesJSON("", "connection refused"), nil, true, ""},
		{"both unhealthy", storesJSON("connection refused", "connection refused"), nil, false, "no live replica of it answered"},
		{"r1 warned, r0 unhealthy", storesJSON("connection refused", ""), []string{warnR1}, false, "no live replica of it answered"},
		{"unknown warning", storesJSON("", ""), []string{"something odd happened"}, false, "names no known store"},
		{"no stores", `{}`, nil, false, "lists no store"},
		{"store without replica label down", `{"store":[{"name":"gw","lastError":"down","labelSets":[{"cluster":"prod"}]}],"sidecar":[{"name":"a","lastError":null,"labelSets":[{"cluster":"prod","replica":"r0"}]}]}`, nil, false, "has no replica label"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.set(healthy()...)
			f.stores, f.warnings = c.stores, c.warnings
			g, _ := newGate(t, f, testPolicy(t, ""))
			e := eval(t, g, "node-a")
			if (e.Verdict == GO) != c.goOK {
				t.Fatalf("verdict %s, want GO %v:\n%s", e.Verdict, c.goOK, dump(e))
			}
			if !c.goOK {
				wantRow(t, e, "nodes/ready", Unknown, c.why)
				if e.Unreachable {
					t.Error("a partial answer is not unreachable")
				}
			}
			if c.goOK && (len(c.warnings) > 0 || strings.Contains(c.stores, "refused")) {
				if r := row(t, e, "nodes/ready"); !strings.Contains(r.Why, `covered by its replica {cluster="prod", replica="r0"}`) {
					t.Errorf("the pass does not say how the missing store was covered: %q", r.Why)
				}
			}
		})
	}
	t.Run("warnings from Prometheus", func(t *testing.T) {
		f := newFake(t)
		f.set(healthy()...)
		f.warnings = []string{"PromQL warning: encountered a mix of histograms and floats"}
		g, _ := newGate(t, f, testPolicy(t, ""))
		e := eval(t, g, "node-a") // auto: /api/v1/stores is 404, so Prometheus
		wantRow(t, e, "nodes/ready", Unknown, "Prometheus answered with warnings")
		for _, form := range f.forms {
			if _, ok := form["dedup"]; ok {
				t.Errorf("dedup sent to Prometheus: %v", form)
			}
		}
		// The kind is resolved once.
		n := len(f.requests)
		e = eval(t, g, "node-a")
		// 8: availability asks no reference once its first answer is refused.
		if len(f.requests)-n != e.Queries || e.Queries != 8 {
			t.Errorf("second evaluation: %d requests, %d counted, want 8 (no store list)", len(f.requests)-n, e.Queries)
		}
	})
}

// A missing store matters only when Thanos would ask it
// for the query: its external labels could match the query's matchers and
// its time range covers the time asked (thanos pkg/store/proxy.go
// storeMatches).
func TestMissingStoresThatCannotHoldTheAnswer(t *testing.T) {
	now := time.Now()
	ms := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixMilli(), 10) }
	const forever = "9223372036854775807"
	prodSidecars := `{"name":"p0","lastError":null,"labelSets":[{"cluster":"prod","prometheus_replica":"prometheus-k8s-0"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `},
	 {"name":"p1","lastError":null,"labelSets":[{"cluster":"prod","prometheus_replica":"prometheus-k8s-1"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `}`
	gateway := func(maxAgo time.Duration) string {
		return `"store":[{"name":"gw","lastError":"connection refused","labelSets":[{"cluster":"prod"}],"minTime":` + ms(-30*24*time.Hour) + `,"maxTime":` + ms(-maxAgo) + `}]`
	}
	for _, c := range []struct {
		name, stores string
		custom       bool   // add a custom query without the cluster matcher
		goOK         bool   // the verdict
		row, why     string // a row and its why
	}{
		// A down sidecar of another cluster, with matchers cluster="prod".
		{"other cluster's sidecar down", `{"sidecar":[` + prodSidecars + `,
		 {"name":"s0","lastError":"connection refused","labelSets":[{"cluster":"staging","prometheus_replica":"prometheus-k8s-0"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `}]}`,
			false, true, "monitoring/stores", `down but holding nothing the queries asked for (external labels that do not match them, or data outside the time asked): s0 {cluster="staging", prometheus_replica="prometheus-k8s-0"}`},
		// ... but a custom query over every cluster needs it.
		{"other cluster's sidecar down, a query over all clusters", `{"sidecar":[` + prodSidecars + `,
		 {"name":"s0","lastError":"connection refused","labelSets":[{"cluster":"staging","prometheus_replica":"prometheus-k8s-0"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `}]}`,
			true, false, "custom/all-clusters", `Thanos store {cluster="staging", prometheus_replica="prometheus-k8s-0"} is missing and no live replica of it answered`},
		// A store gateway whose blocks end two hours before the evaluation.
		{"store gateway with old blocks down", `{"sidecar":[` + prodSidecars + `],` + gateway(2*time.Hour) + `}`,
			false, true, "monitoring/stores", "down but holding nothing the queries asked for"},
		// Blocks ending 3 minutes ago: within the 5m an instant selector
		// reads. It has no replica, so nothing stands in for it.
		{"store gateway with recent blocks down", `{"sidecar":[` + prodSidecars + `],` + gateway(3*time.Minute) + `}`,
			false, false, "nodes/ready", "Thanos store {cluster=\"prod\"} is missing and has no replica label"},
		// Blocks ending 8 minutes ago: only the transitions window (10m)
		// reads that far back.
		{"store gateway, blocks within the transitions window only", `{"sidecar":[` + prodSidecars + `],` + gateway(8*time.Minute) + `}`,
			false, false, "nodes/transitions", "has no replica label"},
		// Thanos Ruler replicas tell themselves apart by ruler_replica
		// (a default replica label).
		{"one ruler replica down", `{"sidecar":[` + prodSidecars + `],"rule":[
		 {"name":"r0","lastError":"connection refused","labelSets":[{"cluster":"prod","ruler_replica":"0"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `},
		 {"name":"r1","lastError":null,"labelSets":[{"cluster":"prod","ruler_replica":"1"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `}]}`,
			false, true, "alerts", `store {cluster="prod", ruler_replica="0"} missing, covered by its replica {cluster="prod", ruler_replica="1"}`},
		// The only ruler down: a sidecar with the same labels does not hold
		// what the ruler evaluated.
		{"the only ruler down", `{"sidecar":[` + prodSidecars + `],"rule":[
		 {"name":"r0","lastError":"connection refused","labelSets":[{"cluster":"prod","ruler_replica":"0"}],"minTime":` + ms(-48*time.Hour) + `,"maxTime":` + forever + `}]}`,
			false, false, "alerts", `Thanos store {cluster="prod", ruler_replica="0"} is missing and no live replica of it answered`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			f.set(healthy()...)
			f.stores = c.stores
			f.custom["count(up)"] = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"3"]}]}}`
			yml := ""
			if c.custom {
				yml = "custom:\n- {name: all-clusters, query: 'count(up)', min: 1}\n"
			}
			g, _ := newGate(t, f, testPolicy(t, yml), func(cfg *Config) { cfg.Now = func() time.Time { return now } })
			e := eval(t, g, "node-a")
			r := row(t, e, c.row)
			if !strings.Contains(r.Why, c.why) {
				t.Errorf("%s: %s %q, want it to contain %q", c.row, r.Status, r.Why, c.why)
			}
			if c.custom {
				// The gate's own queries, all with cluster="prod", pass.
				wantRow(t, e, "nodes/ready", Pass, "")
				wantRow(t, e, c.row, Unknown, "")
			}
			if (e.Verdict == GO) != c.goOK {
				t.Errorf("verdict %s, want GO %v:\n%s", e.Verdict, c.goOK, dump(e))
			}
		})
	}
}

func TestSelectionsOf(t *testing.T) {
	at := time.UnixMilli(10_000_000)
	for _, c := range []struct {
		q          string
		mint, maxt int64 // of the first selector
		n          int
	}{
		{`up{job="x"}`, 10_000_000 - 300_000, 10_000_000, 1},
		{`increase(x[10m])`, 10_000_000 - 600_000, 10_000_000, 1},
		{`x offset 1h`, 10_000_000 - 3_600_000 - 300_000, 10_000_000 - 3_600_000, 1},
		{`max_over_time(x[5m:1m])`, 10_000_000 - 300_000 - 300_000, 10_000_000, 1},
		{`a or b{c="d"}`, 10_000_000 - 300_000, 10_000_000, 2},
	} {
		sels := selectionsOf(c.q, at)
		if len(sels) != c.n || sels[0].mint != c.mint || sels[0].maxt != c.maxt {
			t.Errorf("%s: %+v, want %d selectors, the first [%d, %d]", c.q, sels, c.n, c.mint, c.maxt)
		}
	}
	for _, q := range []string{`x @ 1000`, `not promql (`, `vector(1)`} {
		if sels := selectionsOf(q, at); len(sels) != 1 || sels[0].mint != math.MinInt64 {
			t.Errorf("%s: %+v, want everything", q, sels)
		}
	}
}

func TestAuthAndHeaders(t *testing.T) {
	f := newFake(t)
	f.set(healthy()...)
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) {
		c.Kind = KindPrometheus
		c.HTTP = config.HTTPClientConfig{
			BearerTokenFile: token,
			HTTPHeaders:     &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Values: []string{"team-a"}}}},
		}
	})
	eval(t, g, "")
	for _, r := range f.requests {
		if r.Header.Get("Authorization") != "Bearer s3cret" || r.Header.Get("X-Scope-OrgID") != "team-a" {
			t.Fatalf("request headers %v", r.Header)
		}
	}
	f.requests = nil
	g, _ = newGate(t, f, testPolicy(t, ""), func(c *Config) {
		c.Kind = KindPrometheus
		c.HTTP = config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "gate", Password: "pw"}}
	})
	eval(t, g, "")
	if u, p, ok := f.requests[0].BasicAuth(); !ok || u != "gate" || p != "pw" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	if _, err := New(Config{URL: f.srv.URL, HTTP: config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: filepath.Join(dir, "missing.pem")}}}, DefaultPolicy(), nil); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	if _, err := New(Config{URL: "localhost:9090"}, DefaultPolicy(), nil); err == nil || !strings.Contains(err.Error(), "http://") {
		t.Errorf("URL without scheme: %v", err)
	}
}
