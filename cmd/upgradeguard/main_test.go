package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// unreachableKubeconfig points at a loopback port nothing listens on.
const unreachableKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`

func TestExitCodes(t *testing.T) {
	kubeconfig := writeFile(t, "kubeconfig", unreachableKubeconfig)
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"exporter", "--no-such-flag"}, 2},
		{"bad duration", []string{"exporter", "--kube.sync-timeout=soon"}, 2},
		{"bad log level", []string{"--log.level=loud", "exporter"}, 2},
		{"web config missing", []string{"exporter", "--web.config.file=/nonexistent/web.yml", "--kubeconfig", kubeconfig}, 2},
		{"web config invalid", []string{"exporter", "--web.config.file=" + writeFile(t, "web.yml", "tls_server_config: {cert_file: a.crt}\n"), "--kubeconfig", kubeconfig}, 2},
		{"web config unknown field", []string{"exporter", "--web.config.file=" + writeFile(t, "web2.yml", "basic_auth_userz: {}\n"), "--kubeconfig", kubeconfig}, 2},
		{"health address without a port", []string{"exporter", "--web.health-address=health", "--kubeconfig", kubeconfig}, 2},
		{"all collectors disabled", []string{"exporter", "--no-collector.nodes", "--no-collector.pdb", "--no-collector.workloads", "--kubeconfig", kubeconfig}, 2},
		{"AWS collector without a region", []string{"exporter", "--collector.cni", "--kubeconfig", kubeconfig}, 2},
		{"kubeconfig missing", []string{"exporter", "--kubeconfig", "/nonexistent/kubeconfig"}, 1},
		{"API server unreachable", []string{"exporter", "--kubeconfig", kubeconfig, "--kube.sync-timeout=2s", "--web.listen-address=127.0.0.1:0"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			if got := run(tc.args); got != tc.want {
				t.Errorf("exit status = %d, want %d", got, tc.want)
			}
			if d := time.Since(begin); d > 30*time.Second {
				t.Errorf("took %s: start-up failures must be bounded", d)
			}
		})
	}
}
