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

// TestRunProbesWithProtectedMetrics is issue 19's report, through Run and
// the real flags: with a web config of TLS and basic auth, /healthz and
// /readyz on the main listener answer 401 (as before), but the health
// listener answers the kubelet's plain unauthenticated GETs: 200 for
// /healthz and 503 for /readyz while the informers have not synced.
func TestRunProbesWithProtectedMetrics(t *testing.T) {
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
	if _, err := app.Parse([]string{"exporter",
		"--web.listen-address=" + mainAddr, "--web.health-address=" + healthAddr,
		"--web.config.file=" + filepath.Join(dir, "web-config.yml"),
		"--kubeconfig=" + filepath.Join(dir, "kubeconfig"), "--kube.sync-timeout=1m",
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()

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
		code, err := status(c.client, c.url)
		if err != nil || code != c.want {
			t.Errorf("GET %s: %d (%v), want %d", c.url, code, err, c.want)
		}
	}
}
