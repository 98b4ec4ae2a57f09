package gate

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
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
		{"store of another cluster down", `{"sidecar":[{"name":"a","lastError":null,"labelSets":[{"cluster":"prod","replica":"r0"}]},{"name":"b","lastError":"down","labelSets":[{"cluster":"dev","replica":"r0"}]}]}`, nil, false, `{cluster="dev", replica="r0"} is missing`},
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
		if len(f.requests)-n != e.Queries || e.Queries != 7 {
			t.Errorf("second evaluation: %d requests, %d counted, want 7 (no store list)", len(f.requests)-n, e.Queries)
		}
	})
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
