package dashboards

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestExpressionsParse hands every expression of every dashboard to
// Prometheus's parser through `promtool check rules`, as recording rules.
func TestExpressionsParse(t *testing.T) {
	bin := testbed.Promtool(t)
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboards\n  rules:\n")
	n := 0
	for name, o := range optionSets() {
		for _, g := range build(t, o) {
			for _, e := range Expressions(g) {
				n++
				// %q is a valid YAML double-quoted scalar for these ASCII strings.
				fmt.Fprintf(&b, "  - record: dashboard_expr_%d # %s %s\n    expr: %q\n", n, name, g.UID, e)
			}
		}
	}
	file := filepath.Join(t.TempDir(), "exprs.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(string(out), want) {
		t.Errorf("promtool did not check all %d expressions:\n%s", n, out)
	}
}

// Every metric the dashboards read has one of these prefixes, and each
// family is scraped from one job.
var (
	metricName = regexp.MustCompile(`\b(upgradeguard_[a-z_]+|awscni_[a-z_]+|kube_[a-z_]+|ALERTS)\b(\{[^}]*\})?`)
	matcher    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"`)
)

// TestSelectorsSelectClusterAndJob: every series selector matches the
// cluster variable on the configured label and the job of its metric's
// family (ALERTS: the cluster only), and no metric is read bare.
func TestSelectorsSelectClusterAndJob(t *testing.T) {
	for name, o := range optionSets() {
		jobOf := func(metric string) string {
			switch {
			case metric == "ALERTS":
				return ""
			case strings.HasPrefix(metric, "awscni_"):
				return o.AWSNodeJob
			case strings.HasPrefix(metric, "kube_"):
				return o.KubeStateMetricsJob
			}
			return o.ExporterJob
		}
		for _, g := range build(t, o) {
			exprs := Expressions(g)
			// The last one is the cluster variable's selector, which lists
			// every cluster and so has no cluster matcher.
			for i, e := range exprs {
				found := metricName.FindAllStringSubmatch(e, -1)
				if len(found) == 0 && !strings.Contains(e, "vector(") {
					t.Errorf("%s: %s: %q reads no metric", name, g.UID, e)
				}
				for _, m := range found {
					metric, sel := m[1], m[2]
					if sel == "" {
						t.Errorf("%s: %s: %s without a selector in %q", name, g.UID, metric, e)
						continue
					}
					got := map[string]string{}
					for _, mm := range matcher.FindAllStringSubmatch(sel, -1) {
						got[mm[1]] = mm[2] + mm[3]
					}
					want := ""
					if job := jobOf(metric); job != "" {
						want = "=" + job
					}
					if got["job"] != want {
						t.Errorf("%s: %s: %s%s: job matcher %q, want %q", name, g.UID, metric, sel, got["job"], want)
					}
					last := i == len(exprs)-1
					if c := got[o.ClusterLabel]; !last && c != "=$cluster" {
						t.Errorf("%s: %s: %s%s does not select %s=\"$cluster\"", name, g.UID, metric, sel, o.ClusterLabel)
					}
					if o.ClusterLabel != "cluster" && got["cluster"] != "" {
						t.Errorf("%s: %s: %s%s matches the default cluster label", name, g.UID, metric, sel)
					}
				}
			}
		}
	}
}
