package testbed

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestScrapeConfigRender: a job's TLS, basic auth and relabelling reach
// its scrape_config under Prometheus' field names, and Prometheus' own
// checker accepts the file.
func TestScrapeConfigRender(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.crt", "password"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	job := "upgradeguard"
	st := &promStack{dir: dir, replicas: []string{"r0"}, ports: []int{9090}, jobs: map[string]ScrapeConfig{
		"secure": {
			Scheme: "https", MetricsPath: "/metrics", HonorLabels: true,
			TLS:            &ScrapeTLS{CAFile: filepath.Join(dir, "ca.crt"), ServerName: "upgradeguard-exporter.upgradeguard.svc"},
			BasicAuth:      &ScrapeBasicAuth{Username: "prometheus", PasswordFile: filepath.Join(dir, "password")},
			RelabelConfigs: []RelabelConfig{{TargetLabel: "job", Replacement: &job}},
		},
		"plain": {},
	}}
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := st.writeConfig(0, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(st.configPath(0))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []map[string]any `json:"scrape_configs"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]any{}
	for _, sc := range cfg.ScrapeConfigs {
		name, _ := sc["job_name"].(string)
		delete(sc, "file_sd_configs")
		got[name] = sc
	}
	want := map[string]any{
		"job_name": "secure", "scheme": "https", "metrics_path": "/metrics", "honor_labels": true,
		"tls_config":      map[string]any{"ca_file": filepath.Join(dir, "ca.crt"), "server_name": "upgradeguard-exporter.upgradeguard.svc"},
		"basic_auth":      map[string]any{"username": "prometheus", "password_file": filepath.Join(dir, "password")},
		"relabel_configs": []any{map[string]any{"target_label": "job", "replacement": "upgradeguard"}},
	}
	if !reflect.DeepEqual(got["secure"], want) {
		t.Errorf("secure job:\n got %v\nwant %v", got["secure"], want)
	}
	if !reflect.DeepEqual(got["plain"], map[string]any{"job_name": "plain"}) {
		t.Errorf("plain job: %v, want only its name and targets", got["plain"])
	}

	out, err := exec.Command(Promtool(t), "check", "config", st.configPath(0)).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}
