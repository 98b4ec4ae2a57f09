package gate

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProbes: the gate's own requests - an answer with an expected status
// passes, another status or a refused connection FAILs, no answer within
// the timeout is UNKNOWN; HTTPS is verified with the probe's CA file.
func TestProbes(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/down", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/vhost", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "dex.example.com" || r.Header.Get("X-Token") != "t0k" {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewTLSServer(mux)
	t.Cleanup(tlsSrv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := httptest.NewServer(mux)
	refusedURL := closed.URL
	closed.Close()

	yml := fmt.Sprintf(`probes:
- {name: ok, url: %[1]s/ok}
- {name: down, url: %[1]s/down}
- {name: moved, url: %[1]s/moved, expect_status: [301, 302]}
- {name: slow, url: %[1]s/slow, timeout: 300ms}
- {name: refused, url: %[3]s/ok}
- {name: tls, url: %[2]s/ok, ca_file: %[4]s}
- {name: tls-unknown-ca, url: %[2]s/ok}
- {name: vhost, url: %[2]s/vhost, ca_file: %[4]s, headers: {Host: dex.example.com, X-Token: t0k}}
`, plain.URL, tlsSrv.URL, refusedURL, ca)
	f := newFake(t)
	f.set(healthy()...)
	g, _ := newGate(t, f, testPolicy(t, yml))
	began := time.Now()
	e := eval(t, g, "node-b")
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("evaluation took %s: the probes did not run concurrently within their timeouts", took)
	}
	wantRow(t, e, "probe/ok", Pass, "")
	wantRow(t, e, "probe/down", Fail, "answered 503 Service Unavailable")
	wantRow(t, e, "probe/moved", Pass, "")
	wantRow(t, e, "probe/slow", Unknown, "no answer within 300ms")
	wantRow(t, e, "probe/refused", Fail, "connection refused")
	wantRow(t, e, "probe/tls", Pass, "")
	wantRow(t, e, "probe/tls-unknown-ca", Fail, "certificate")
	wantRow(t, e, "probe/vhost", Pass, "")
	if r := row(t, e, "probe/ok"); r.Query != "GET "+plain.URL+"/ok" || !strings.HasPrefix(r.Value, "200 in ") || r.Threshold != "status 200 within 5s" {
		t.Errorf("probe/ok row %+v", r)
	}
	if e.Verdict == GO {
		t.Error("verdict GO with failing probes")
	}
	if e.Queries != 10 {
		t.Errorf("%d monitoring requests, want 10: probes are not queries", e.Queries)
	}
}

func TestProbePolicyErrors(t *testing.T) {
	for yml, want := range map[string]string{
		"probes:\n- {url: http://x}\n":                                      "probes[0].name: missing",
		"probes:\n- {name: a, url: http://x}\n- {name: a, url: http://y}\n": `probes[1].name: "a" used twice`,
		"probes:\n- {name: a}\n":                                            "probes[0].url: missing",
		"probes:\n- {name: a, url: 'ftp://x/'}\n":                           "want http:// or https://",
		"probes:\n- {name: a, url: http://x, expect_status: [999]}\n":       "probes[0].expect_status: 999 is not an HTTP status",
		"probes:\n- {name: a, url: http://x, ca_file: /nonexistent.pem}\n":  "probes[0].ca_file: open /nonexistent.pem",
		"probes:\n- {name: a, url: http://x, headers: {'a b': c}}\n":        `bad header name "a b"`,
	} {
		if _, err := ParsePolicy([]byte(yml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yml, err, want)
		}
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePolicy([]byte("probes:\n- {name: a, url: https://x, ca_file: " + notPEM + "}\n")); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("a CA file without a certificate: %v", err)
	}
}
