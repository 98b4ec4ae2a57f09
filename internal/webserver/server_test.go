package webserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// secureDir writes a serving certificate for 127.0.0.1 signed by a new CA
// and a web config using it (relative paths, as the deploy bundle's) plus
// extra lines, and returns the config's path and a pool trusting the CA.
func secureDir(t *testing.T, extra string) (string, *x509.CertPool) {
	t.Helper()
	ca, err := testbed.NewCA("webserver-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("webserver-test", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n%sbasic_auth_users:\n  prometheus: %s\n", extra, hash)
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": ca.CertPEM, "web-config.yml": []byte(cfg)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	return filepath.Join(dir, "web-config.yml"), pool
}

func testConfig(webConfig string, healthAddr string) *Config {
	addrs := []string{"127.0.0.1:0"}
	systemd := false
	return &Config{
		FlagConfig:    &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &webConfig},
		HealthAddress: healthAddr,
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mainHandler is what a command serves: metrics and, as the exporter does,
// its health endpoints too.
func mainHandler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "up 1") })
	HandleHealth(mux, ready)
	return mux
}

func start(t *testing.T, cfg *Config, ready func() error) *Server {
	t.Helper()
	s, err := Start(cfg, mainHandler(ready), HealthHandler(ready), discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

type request struct {
	url        string
	client     *http.Client
	user, pass string
}

func get(t *testing.T, r request) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	c := r.client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", r.url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// TestProtectedMainOpenHealth: with TLS and basic auth
// from the web config, the main listener refuses plain HTTP (400) and
// requests without the right credentials (401), /healthz and /readyz
// included, while the health listener answers the kubelet's plain,
// unauthenticated probes and serves nothing else.
func TestProtectedMainOpenHealth(t *testing.T) {
	webConfig, pool := secureDir(t, "")
	var isReady atomic.Bool
	ready := func() error {
		if !isReady.Load() {
			return errors.New("informers not synced yet")
		}
		return nil
	}
	s := start(t, testConfig(webConfig, "127.0.0.1:0"), ready)
	main := s.Addrs()[0].String()
	health := "http://" + s.HealthAddr().String()
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	for _, c := range []struct {
		what string
		r    request
		code int
	}{
		{"plain HTTP to the TLS listener", request{url: "http://" + main + "/metrics"}, http.StatusBadRequest},
		{"no credentials", request{url: "https://" + main + "/metrics", client: tlsClient}, http.StatusUnauthorized},
		{"wrong password", request{url: "https://" + main + "/metrics", client: tlsClient, user: "prometheus", pass: "guess"}, http.StatusUnauthorized},
		{"unknown user", request{url: "https://" + main + "/metrics", client: tlsClient, user: "admin", pass: "s3cret"}, http.StatusUnauthorized},
		{"main /healthz without credentials", request{url: "https://" + main + "/healthz", client: tlsClient}, http.StatusUnauthorized},
		{"the right user", request{url: "https://" + main + "/metrics", client: tlsClient, user: "prometheus", pass: "s3cret"}, http.StatusOK},
		{"health listener /healthz", request{url: health + "/healthz"}, http.StatusOK},
		{"health listener /readyz before ready", request{url: health + "/readyz"}, http.StatusServiceUnavailable},
		{"health listener /metrics", request{url: health + "/metrics"}, http.StatusNotFound},
		{"health listener /", request{url: health + "/"}, http.StatusNotFound},
	} {
		if code, body := get(t, c.r); code != c.code {
			t.Errorf("%s: %d %q, want %d", c.what, code, body, c.code)
		}
	}
	isReady.Store(true)
	if code, body := get(t, request{url: health + "/readyz"}); code != http.StatusOK || body != "ok" {
		t.Errorf("health listener /readyz once ready: %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, request{url: health + "/readyz", client: tlsClient}); code != http.StatusOK {
		t.Errorf("health listener /readyz with a TLS-capable client: %d %q", code, body)
	}
}

// TestHealthWithClientCertificates shows why the health endpoints have
// their own listener: with client certificates required, a client without
// one (the kubelet) fails the TLS handshake before any path is read, so no
// path exemption could let a probe through; the health listener still
// answers.
func TestHealthWithClientCertificates(t *testing.T) {
	webConfig, pool := secureDir(t, "")
	dir := filepath.Dir(webConfig)
	data, err := os.ReadFile(webConfig)
	if err != nil {
		t.Fatal(err)
	}
	mtls := strings.Replace(string(data), "tls_server_config:\n", "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "web-config.yml"), []byte(mtls), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, testConfig(webConfig, "127.0.0.1:0"), nil)
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if _, err := tlsClient.Get("https://" + s.Addrs()[0].String() + "/healthz"); err == nil {
		t.Error("the main listener answered a client without a certificate")
	}
	if code, _ := get(t, request{url: "http://" + s.HealthAddr().String() + "/readyz"}); code != http.StatusOK {
		t.Errorf("health listener /readyz: %d, want 200", code)
	}
}

// TestPlainWithoutWebConfig: without a web config nothing changes for the
// main listener; the health listener is optional.
func TestPlainWithoutWebConfig(t *testing.T) {
	s := start(t, testConfig("", ""), nil)
	if s.HealthAddr() != nil {
		t.Errorf("health listener %v without --web.health-address", s.HealthAddr())
	}
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, _ := get(t, request{url: "http://" + s.Addrs()[0].String() + p}); code != http.StatusOK {
			t.Errorf("%s: %d, want 200", p, code)
		}
	}
}

// TestStartErrors: a bad web config or an address that cannot be bound is
// refused before anything is served, naming the flag, and leaves no
// listener behind.
func TestStartErrors(t *testing.T) {
	webConfig, _ := secureDir(t, "")
	if err := os.Remove(filepath.Join(filepath.Dir(webConfig), "tls.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(testConfig(webConfig, ""), mainHandler(nil), HealthHandler(nil), discard()); err == nil || !strings.Contains(err.Error(), "--web.config.file") {
		t.Errorf("missing key file: %v, want an error naming --web.config.file", err)
	}
	if _, err := Start(testConfig("", "no-port"), mainHandler(nil), HealthHandler(nil), discard()); err == nil || !strings.Contains(err.Error(), "--web.health-address") {
		t.Errorf("health address without a port: %v, want an error naming --web.health-address", err)
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := Start(testConfig("", busy.Addr().String()), mainHandler(nil), HealthHandler(nil), discard()); err == nil || !strings.Contains(err.Error(), "--web.health-address") {
		t.Errorf("health address in use: %v, want an error naming --web.health-address", err)
	}
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	healthAddr := free.Addr().String()
	free.Close()
	cfg := testConfig("", healthAddr)
	*cfg.WebListenAddresses = []string{busy.Addr().String()}
	if _, err := Start(cfg, mainHandler(nil), HealthHandler(nil), discard()); err == nil || !strings.Contains(err.Error(), "--web.listen-address") {
		t.Errorf("listen address in use: %v, want an error naming --web.listen-address", err)
	}
	// The health listener bound before the failure was closed.
	ln, err := net.Listen("tcp", healthAddr)
	if err != nil {
		t.Errorf("the health address stayed bound after a failed start: %v", err)
	} else {
		ln.Close()
	}
}

// TestHealthHandlerWithProbePaths: a command whose readiness probe reads
// another path (gate hold's /gate) serves it on the health listener,
// unauthenticated, beside /healthz and /readyz.
func TestHealthHandlerWithProbePaths(t *testing.T) {
	webConfig, _ := secureDir(t, "")
	health := http.NewServeMux()
	HandleHealth(health, nil)
	health.HandleFunc("/gate", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "WAIT", http.StatusServiceUnavailable)
	})
	s, err := Start(testConfig(webConfig, "127.0.0.1:0"), mainHandler(nil), health, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	base := "http://" + s.HealthAddr().String()
	if code, body := get(t, request{url: base + "/gate"}); code != http.StatusServiceUnavailable || body != "WAIT" {
		t.Errorf("/gate: %d %q, want 503 WAIT", code, body)
	}
	if code, _ := get(t, request{url: base + "/healthz"}); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", code)
	}
}
