package exporter

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
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// unreachableKubeconfig points at a loopback port nothing listens on: the
// exporter then never becomes ready, which is what a probe must be able to
// see.
const unreachableKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`

// TestRunProbesWithProtectedMetrics: the kubelet's probes when the metrics
// are protected, through Run and the real flags: with a web config of TLS and basic auth, /healthz and
// /readyz on the main listener answer 401 (as before), but the health
// listener answers the kubelet's plain unauthenticated GETs: 200 for
// /healthz and 503 for /readyz while the informers have not synced.
func TestRunProbesWithProtectedMetrics(t *testing.T) {
	e := runProtected(t)
	mainAddr, healthAddr, plain, tlsClient := e.mainAddr, e.healthAddr, e.plain, e.tls
	for _, c := range []struct {
		client *http.Client
		url    string
		want   int
	}{
		{plain, "http://" + healthAddr + "/readyz", http.StatusServiceUnavailable},
		{plain, "http://" + healthAddr + "/metrics", http.StatusNotFound},
		{tlsClient, "https://" + mainAddr + "/healthz", http.StatusUnauthorized},
		{tlsClient, "https://" + mainAddr + "/readyz", http.StatusUnauthorized},
		{tlsClient, "https://" + mainAddr + "/metrics", http.StatusUnauthorized},
		{plain, "http://" + mainAddr + "/metrics", http.StatusBadRequest},
	} {
		code, _, err := e.get(c.client, c.url, false)
		if err != nil || code != c.want {
			t.Errorf("GET %s: %d (%v), want %d", c.url, code, err, c.want)
		}
	}
}

// TestRunPprof: --web.enable-pprof serves Go's profiles on the main
// listener behind the web config (401 without credentials, a gzipped
// profile with them), never on the unauthenticated health listener; without
// the flag there is no /debug/pprof/.
func TestRunPprof(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		t.Run(fmt.Sprintf("enabled=%v", enabled), func(t *testing.T) {
			var extra []string
			if enabled {
				extra = append(extra, "--web.enable-pprof")
			}
			e := runProtected(t, extra...)
			heap := "https://" + e.mainAddr + "/debug/pprof/heap"
			if code, _, err := e.get(e.tls, heap, false); err != nil || code != http.StatusUnauthorized {
				t.Errorf("GET %s without credentials: %d (%v), want 401", heap, code, err)
			}
			for _, path := range []string{"/debug/pprof/heap", "/debug/pprof/"} {
				if code, _, err := e.get(e.plain, "http://"+e.healthAddr+path, false); err != nil || code != http.StatusNotFound {
					t.Errorf("health listener %s: %d (%v), want 404", path, code, err)
				}
			}
			code, body, err := e.get(e.tls, heap, true)
			switch {
			case err != nil:
				t.Fatalf("GET %s: %v", heap, err)
			case !enabled && code != http.StatusNotFound:
				t.Errorf("GET %s without --web.enable-pprof: %d, want 404", heap, code)
			case enabled && (code != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b):
				t.Errorf("GET %s: %d, %d bytes starting %q, want 200 and a gzipped profile", heap, code, len(body), body[:min(len(body), 8)])
			}
			if code, _, _ := e.get(e.tls, "https://"+e.mainAddr+"/metrics", true); code != http.StatusOK {
				t.Errorf("/metrics with credentials: %d, want 200", code)
			}
		})
	}
}

// protectedExporter is an exporter run by Run with a web config of TLS and
// basic auth (user prometheus, password s3cret), a health listener and an
// API server that never answers.
type protectedExporter struct {
	mainAddr, healthAddr string
	plain, tls           *http.Client
}

// get GETs url with c, with the web config's credentials when auth, and
// returns the status and body.
func (e protectedExporter) get(c *http.Client, url string, auth bool) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if auth {
		req.SetBasicAuth("prometheus", "s3cret")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// runProtected runs the exporter with the real flags and extra ones until
// the test ends, and waits until its health listener answers.
func runProtected(t *testing.T, extra ...string) protectedExporter {
	t.Helper()
	dir := t.TempDir()
	ca, err := testbed.NewCA("exporter-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("exporter", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"tls.crt": certPEM, "tls.key": keyPEM, "kubeconfig": []byte(unreachableKubeconfig),
		"web-config.yml": fmt.Appendf(nil, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: %s\n", hash),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mainAddr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	healthAddr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	app := kingpin.New("upgradeguard", "")
	cmd := app.Command("exporter", "")
	cfg := AddFlags(cmd)
	if _, err := app.Parse(append([]string{"exporter",
		"--web.listen-address=" + mainAddr, "--web.health-address=" + healthAddr,
		"--web.config.file=" + filepath.Join(dir, "web-config.yml"),
		"--kubeconfig=" + filepath.Join(dir, "kubeconfig"), "--kube.sync-timeout=1m",
	}, extra...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	plain := &http.Client{Timeout: 5 * time.Second}
	status := func(c *http.Client, url string) (int, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	err = testbed.WaitFor(ctx, 30*time.Second, "the health listener to answer", func(context.Context) (bool, error) {
		code, err := status(plain, "http://"+healthAddr+"/healthz")
		return err == nil && code == http.StatusOK, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return protectedExporter{mainAddr: mainAddr, healthAddr: healthAddr, plain: plain, tls: tlsClient}
}
