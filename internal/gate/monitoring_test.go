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

// The default policy requires the bundle's watchdog; an
// ALERTS answer without it proves nothing.
func TestWatchdog(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	base := healthy()
	g, _ := newGate(t, f, testPolicy(t, ""))
	f.set(base...)
	e := eval(t, g, "node-a")
	wantRow(t, e, "monitoring/watchdog", Pass, "")
	if e.Verdict != GO || e.Queries != 10 {
		t.Errorf("verdict %s after %d requests, want GO after 10 (the watchdog shares the alerts' query)", e.Verdict, e.Queries)
	}
	// The evaluator went away: ALERTS is empty, no warning. Not GO.
	f.set(replace(base, "", "__name__", "ALERTS")...)
	e = eval(t, g, "node-a")
	for _, why := range []string{"UpgradeGuardWatchdog is not firing", "load deploy/generated's rules", `monitoring.watchdog: ""`} {
		wantRow(t, e, "monitoring/watchdog", Unknown, why)
	}
	wantRow(t, e, "alerts", Pass, "")
	if e.Verdict == GO {
		t.Errorf("GO without the watchdog:\n%s", dump(e))
	}
	// Another cluster's watchdog proves nothing about this one.
	f.set(append(replace(base, "", "alertname", "UpgradeGuardWatchdog"),
		ser("1", "__name__", "ALERTS", "alertname", "UpgradeGuardWatchdog", "alertstate", "firing", "severity", "none", "cluster", "staging"))...)
	wantRow(t, eval(t, g, "node-a"), "monitoring/watchdog", Unknown, "not firing")
	// Required with the alerts check turned off too.
	off, _ := newGate(t, f, testPolicy(t, "alerts: {enabled: false}"))
	wantRow(t, eval(t, off, "node-a"), "monitoring/watchdog", Unknown, "not firing")
	// Opting out takes an explicit line; another name can be required.
	out, _ := newGate(t, f, testPolicy(t, "monitoring: {watchdog: \"\"}"))
	e = eval(t, out, "node-a")
	wantRow(t, e, "monitoring/watchdog", Skip, "opts out")
	if e.Verdict != GO {
		t.Errorf("opted out: %s", dump(e))
	}
	kp, _ := newGate(t, f, testPolicy(t, "monitoring: {watchdog: Watchdog}"))
	f.set(base...)
	wantRow(t, eval(t, kp, "node-a"), "monitoring/watchdog", Pass, "")
	f.set(replace(base, "", "alertname", "Watchdog")...)
	wantRow(t, eval(t, kp, "node-a"), "monitoring/watchdog", Unknown, "the always-firing alert Watchdog is not firing")
}
