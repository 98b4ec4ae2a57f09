package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ScrapeAPIServer makes both Prometheus replicas scrape kube-apiserver's
// /metrics as job "apiserver" (HTTPS verified against the testbed CA, the
// admin token), keeping only the named metrics: the API server exposes
// thousands of series, and the tests need few of them. Calling it again
// replaces the list.
func (tb *Testbed) ScrapeAPIServer(metrics ...string) error {
	if tb.prom == nil {
		return errors.New("ScrapeAPIServer: the testbed runs no Prometheus (Options.Prometheus)")
	}
	if len(metrics) == 0 {
		return errors.New("ScrapeAPIServer: name the metrics to keep")
	}
	for _, m := range metrics {
		if !metricName.MatchString(m) {
			return fmt.Errorf("ScrapeAPIServer: bad metric name %q", m)
		}
	}
	token := filepath.Join(tb.prom.dir, "apiserver.token")
	if err := os.WriteFile(token, []byte(tb.adminToken), 0o600); err != nil {
		return err
	}
	return tb.SetScrapeJob("apiserver", []string{strings.TrimPrefix(tb.APIServerURL, "https://")}, ScrapeConfig{
		Scheme:        "https",
		TLS:           &ScrapeTLS{CAFile: tb.pki.CACert},
		Authorization: &ScrapeAuthorization{CredentialsFile: token},
		MetricRelabelConfigs: []RelabelConfig{{
			SourceLabels: []string{"__name__"}, Regex: strings.Join(metrics, "|"), Action: "keep",
		}},
	})
}

var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
