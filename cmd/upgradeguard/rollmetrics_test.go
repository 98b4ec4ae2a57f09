package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestRollMetricsProtected: the roll's --metrics-address with
// --web.config.file serves its metrics over TLS to the configured user
// only, while --web.health-address answers probes without credentials.
func TestRollMetricsProtected(t *testing.T) {
	dir := t.TempDir()
	ca, err := testbed.NewCA("roll-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("roll", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"tls.crt": certPEM, "tls.key": keyPEM,
		"web.yml": fmt.Appendf(nil, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: %s\n", hash),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	metricsAddr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	healthAddr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	// The roll's own flags, parsed as the command parses them.
	app := kingpin.New("upgradeguard", "")
	var rf rollFlags
	addRollFlags(app.Command("roll", ""), &rf)
	if _, err := app.Parse([]string{"roll", "--metrics-address", metricsAddr, "--web.config.file", filepath.Join(dir, "web.yml"), "--web.health-address", healthAddr}); err != nil {
		t.Fatal(err)
	}
	cfg, err := rf.metricsWeb.config(rf.metricsAddress)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "upgradeguard_roll_paused", Help: "Test."}))
	stop, err := serveMetrics(context.Background(), cfg, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	plain := &http.Client{Timeout: 5 * time.Second}
	for _, c := range []struct {
		client     *http.Client
		url        string
		user, pass string
		want       int
		body       string
	}{
		{plain, "http://" + metricsAddr + "/metrics", "", "", http.StatusBadRequest, ""},
		{tlsClient, "https://" + metricsAddr + "/metrics", "", "", http.StatusUnauthorized, ""},
		{tlsClient, "https://" + metricsAddr + "/metrics", "prometheus", "wrong", http.StatusUnauthorized, ""},
		{tlsClient, "https://" + metricsAddr + "/metrics", "prometheus", "s3cret", http.StatusOK, "upgradeguard_roll_paused 0"},
		{plain, "http://" + healthAddr + "/healthz", "", "", http.StatusOK, "ok"},
		{plain, "http://" + healthAddr + "/readyz", "", "", http.StatusOK, "ok"},
		{plain, "http://" + healthAddr + "/metrics", "", "", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, c.url, nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", c.url, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.body) {
			t.Errorf("GET %s as %q: %d %q, want %d with %q", c.url, c.user, resp.StatusCode, body, c.want, c.body)
		}
	}
}

// TestRollMetricsPlain: without --web.config.file, --metrics-address
// serves plain HTTP as before, with no health listener.
func TestRollMetricsPlain(t *testing.T) {
	addr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := (&metricsWebFlags{}).config(addr)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "upgradeguard_roll_paused", Help: "Test."}))
	stop, err := serveMetrics(context.Background(), cfg, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "upgradeguard_roll_paused 0") {
		t.Errorf("GET /metrics: %d %q", resp.StatusCode, body)
	}
	if _, err := serveMetrics(context.Background(), cfg, reg, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a second server on the same address started")
	}
}
