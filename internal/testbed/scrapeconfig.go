package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ScrapeConfig is how the testbed's Prometheus scrapes a job, in the terms
// of Prometheus' scrape_config: what the Prometheus Operator renders a
// ServiceMonitor endpoint into (scheme, path, honorLabels, tlsConfig,
// basicAuth, authorization, relabelings), with the Secrets it would read
// given as files. The zero value scrapes /metrics in plain HTTP.
type ScrapeConfig struct {
	Scheme         string // "http" (default) or "https"
	MetricsPath    string // default /metrics
	HonorLabels    bool
	TLS            *ScrapeTLS
	BasicAuth      *ScrapeBasicAuth
	Authorization  *ScrapeAuthorization
	RelabelConfigs []RelabelConfig
	// MetricRelabelConfigs apply to the scraped samples (e.g. keep only
	// some metrics of a target exposing thousands of series).
	MetricRelabelConfigs []RelabelConfig
}

// ScrapeTLS is a scrape_config's tls_config.
type ScrapeTLS struct {
	CAFile             string // CA certificate (PEM) the server's certificate must chain to
	ServerName         string // name the certificate must be valid for, and the SNI sent
	CertFile, KeyFile  string // client certificate and key, if any
	InsecureSkipVerify bool
}

// ScrapeBasicAuth is a scrape_config's basic_auth; the password is read
// from a file.
type ScrapeBasicAuth struct {
	Username, PasswordFile string
}

// ScrapeAuthorization is a scrape_config's authorization: an Authorization
// header of Type (default Bearer) with the credentials read from a file.
type ScrapeAuthorization struct {
	Type, CredentialsFile string
}

// RelabelConfig is one entry of relabel_configs; empty fields keep
// Prometheus' defaults.
type RelabelConfig struct {
	SourceLabels []string
	Separator    string
	Regex        string
	TargetLabel  string
	Replacement  *string
	Action       string
}

// render is c as the fields of a scrape_config (JSON, which is YAML).
func (c ScrapeConfig) render() map[string]any {
	sc := map[string]any{}
	set := func(m map[string]any, k string, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(sc, "scheme", c.Scheme)
	set(sc, "metrics_path", c.MetricsPath)
	if c.HonorLabels {
		sc["honor_labels"] = true
	}
	if t := c.TLS; t != nil {
		tc := map[string]any{}
		set(tc, "ca_file", t.CAFile)
		set(tc, "server_name", t.ServerName)
		set(tc, "cert_file", t.CertFile)
		set(tc, "key_file", t.KeyFile)
		if t.InsecureSkipVerify {
			tc["insecure_skip_verify"] = true
		}
		sc["tls_config"] = tc
	}
	if a := c.BasicAuth; a != nil {
		ba := map[string]any{}
		set(ba, "username", a.Username)
		set(ba, "password_file", a.PasswordFile)
		sc["basic_auth"] = ba
	}
	if a := c.Authorization; a != nil {
		az := map[string]any{}
		set(az, "type", a.Type)
		set(az, "credentials_file", a.CredentialsFile)
		sc["authorization"] = az
	}
	if rcs := renderRelabels(c.RelabelConfigs); len(rcs) > 0 {
		sc["relabel_configs"] = rcs
	}
	if rcs := renderRelabels(c.MetricRelabelConfigs); len(rcs) > 0 {
		sc["metric_relabel_configs"] = rcs
	}
	return sc
}

func renderRelabels(rs []RelabelConfig) []any {
	var rcs []any
	for _, r := range rs {
		rc := map[string]any{}
		set := func(k, v string) {
			if v != "" {
				rc[k] = v
			}
		}
		if len(r.SourceLabels) > 0 {
			rc["source_labels"] = r.SourceLabels
		}
		set("separator", r.Separator)
		set("regex", r.Regex)
		set("target_label", r.TargetLabel)
		if r.Replacement != nil {
			rc["replacement"] = *r.Replacement
		}
		set("action", r.Action)
		rcs = append(rcs, rc)
	}
	return rcs
}

// Target is one scrape target as the first Prometheus replica reports it
// (/api/v1/targets).
type Target struct {
	Job       string // the scrape pool (job_name)
	ScrapeURL string
	Health    string // "up", "down" or "unknown"
	LastError string
	Labels    map[string]string
}

// Targets lists the active targets of the first Prometheus replica.
func (tb *Testbed) Targets(ctx context.Context) ([]Target, error) {
	if len(tb.PrometheusURLs) == 0 {
		return nil, errors.New("Targets: the testbed runs no Prometheus")
	}
	body, err := httpGet(ctx, tb.PrometheusURLs[0]+"/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []struct {
				ScrapePool string            `json:"scrapePool"`
				ScrapeURL  string            `json:"scrapeUrl"`
				Health     string            `json:"health"`
				LastError  string            `json:"lastError"`
				Labels     map[string]string `json:"labels"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decoding /api/v1/targets: %w: %s", err, truncate(string(body), 300))
	}
	var out []Target
	for _, t := range resp.Data.ActiveTargets {
		out = append(out, Target{Job: t.ScrapePool, ScrapeURL: t.ScrapeURL, Health: t.Health, LastError: t.LastError, Labels: t.Labels})
	}
	return out, nil
}

// QueryPrometheus runs an instant query on Prometheus replica i (no Thanos
// in between: what one replica scraped).
func (tb *Testbed) QueryPrometheus(ctx context.Context, i int, query string) ([]Sample, error) {
	if i < 0 || i >= len(tb.PrometheusURLs) {
		return nil, fmt.Errorf("QueryPrometheus: no replica %d", i)
	}
	return queryInstant(ctx, tb.PrometheusURLs[i], query, nil)
}
