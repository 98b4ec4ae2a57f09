package promqlcheck

import (
	"slices"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
		err  string
	}{
		{expr: `up{job="x"} == 0`, want: []string{"up"}},
		{expr: `sum by (cluster) (rate(a_total[5m])) / sum by (cluster) (rate(a_total[5m])) > on(cluster) group_left() b`, want: []string{"a_total", "b"}},
		{expr: `absent(up{job="x"} == 1)`, want: []string{"up"}},
		{expr: `{__name__="c", job="x"} unless d`, want: []string{"c", "d"}},
		{expr: `max_over_time(e[10m:1m])`, want: []string{"e"}},
		{expr: `vector(1)`, want: nil},
		{expr: `{job="x"}`, err: "no literal metric name"},
		{expr: `{__name__=~"up|foo"}`, err: "no literal metric name"},
		{expr: `sum(up{job="x"}`, err: "parsing"},
	} {
		got, err := Metrics(tc.expr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Metrics(%q) error %v, want one containing %q", tc.expr, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Metrics(%q): %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Metrics(%q) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestDefaultKnowsTheExporterAndExternalMetrics(t *testing.T) {
	k, err := Default("upgradeguard:some_recording:ratio")
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{
		`upgradeguard_node_ready{job="upgradeguard"} == 0`,
		`upgradeguard_pdb_disruptions_allowed == 0 and upgradeguard_pdb_expected_pods > 0`,
		`rate(upgradeguard_aws_api_requests_total[5m])`,
		`time() - upgradeguard_aws_refresh_last_success_timestamp_seconds > 600`,
		`upgradeguard_collector_success == 0`,
		`upgradeguard_aws_asg_surge_ips`,
		`upgradeguard_zone_available_ips`,
		`upgradeguard_build_info`,
		`awscni_assigned_ip_addresses / awscni_total_ip_addresses`,
		`rate(awscni_aws_api_latency_ms_sum[5m]) / rate(awscni_aws_api_latency_ms_count[5m])`,
		`kube_pod_status_unschedulable == 1`,
		`ALERTS{alertstate="firing"}`,
		`upgradeguard:some_recording:ratio > 0.9`,
	} {
		if err := k.Check(ok); err != nil {
			t.Errorf("Check(%q): %v", ok, err)
		}
	}
	for _, bad := range []struct{ expr, unknown string }{
		{`upgradeguard_node_redy == 0`, "upgradeguard_node_redy"},
		{`upgradeguard_aws_api_requests == 1 or up`, "upgradeguard_aws_api_requests"},
		{`awscni_total_ip_address`, "awscni_total_ip_address"},
		{`upgradeguard:other:ratio`, "upgradeguard:other:ratio"},
		{`upgradeguard_node_ready_sum`, "upgradeguard_node_ready_sum"},
	} {
		err := k.Check(bad.expr)
		if err == nil || !strings.Contains(err.Error(), bad.unknown) {
			t.Errorf("Check(%q) = %v, want an error naming %s", bad.expr, err, bad.unknown)
		}
	}
}
