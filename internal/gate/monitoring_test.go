package gate

import (
	"strconv"
	"testing"
	"time"
)

func TestMonitoringRows(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	g, _ := newGate(t, f, testPolicy(t, ""))
	runRowCases(t, f, g, "node-b", []rowCase{
		{"0", []string{"__name__", "up"}, "monitoring/up", Fail, "exporter target down: 10.0.0.9:9741"},
		{"NaN", []string{"__name__", "up"}, "monitoring/up", Unknown, "NaN"},
		{"0", []string{"collector", "pdb", "__name__", "upgradeguard_collector_success"}, "monitoring/collectors", Fail, "failing (serving stale data): pdb"},
		{"", []string{"__name__", "upgradeguard_collector_success", "collector", "pdb"}, "monitoring/collectors", Unknown, "required collectors not reporting: pdb"},
		{"1000", []string{"collector", "cni", "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds"}, "monitoring/aws-fresh", Fail, "AWS data stale: cni/eu-west-1"},
		{strconv.FormatInt(time.Now().Add(-4*time.Hour).Unix(), 10), []string{"collector", "awsquota_limits", "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds"}, "monitoring/aws-fresh", Fail, "AWS data stale: awsquota_limits/eu-west-1 4h0m"},
		{"", []string{"collector", "cni", "__name__", "upgradeguard_aws_refresh_last_success_timestamp_seconds"}, "monitoring/aws-fresh", Unknown, "cni has no successful refresh yet"},
	})
}

func TestWatchdog(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	base := healthy()
	// The Watchdog, when required, must be present.
	gw, _ := newGate(t, f, testPolicy(t, "monitoring: {watchdog: Watchdog}"))
	f.set(base...)
	wantRow(t, eval(t, gw, "node-a"), "monitoring/watchdog", Pass, "")
	f.set(replace(base, "", "alertname", "Watchdog")...)
	wantRow(t, eval(t, gw, "node-a"), "monitoring/watchdog", Unknown, "absent")
}
