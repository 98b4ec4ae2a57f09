package gate

import (
	"context"
	"path/filepath"
	"testing"
)

func TestFiringAlerts(t *testing.T) {
	f := newFake(t)
	base := healthy()
	f.stores = storesJSON("", "")
	firing := ser("1", "__name__", "ALERTS", "alertname", "KubeNodeNotReady", "alertstate", "firing", "severity", "warning", "node", "node-c", "cluster", "prod")
	f.set(append(base, firing)...)
	g, _ := newGate(t, f, testPolicy(t, ""))
	e := eval(t, g, "node-a")
	wantRow(t, e, "alerts", Fail, "KubeNodeNotReady{severity=warning,node=node-c}")
	if e.Verdict != WAIT || len(e.Reasons()) != 1 {
		t.Errorf("verdict %s reasons %q", e.Verdict, e.Reasons())
	}
	// Another cluster's alert does not count.
	other := ser("1", "__name__", "ALERTS", "alertname", "KubeNodeNotReady", "alertstate", "firing", "severity", "critical", "cluster", "staging")
	pending := ser("1", "__name__", "ALERTS", "alertname", "Slow", "alertstate", "pending", "severity", "critical", "cluster", "prod")
	f.set(append(base, other, pending)...)
	if e := eval(t, g, "node-a"); e.Verdict != GO {
		t.Errorf("other cluster's alert and a pending one: %s\n%s", e.Verdict, dump(e))
	}
	// Pending alerts block when the policy says so.
	gp, _ := newGate(t, f, testPolicy(t, "alerts: {pending: true}"))
	wantRow(t, eval(t, gp, "node-a"), "alerts", Fail, "Slow{severity=critical,alertstate=pending}")

	// A baseline tolerates an alert already firing, unless its severity changes.
	f.set(append(base, firing)...)
	bl := &Baseline{Alerts: []BaselineAlert{{Labels: map[string]string{"alertname": "KubeNodeNotReady", "severity": "warning", "node": "node-c", "cluster": "prod", "replica": "r0"}}}}
	path := filepath.Join(t.TempDir(), "baseline.json")
	if err := WriteBaseline(path, bl); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) { c.Baseline = loaded })
	e = eval(t, gb, "node-a")
	if e.Verdict != GO {
		t.Errorf("baseline alert blocks: %s", dump(e))
	}
	wantRow(t, e, "alerts", Pass, "firing since the baseline, not blocking: KubeNodeNotReady")
	escalated := firing
	escalated.labels = map[string]string{}
	for k, v := range firing.labels {
		escalated.labels[k] = v
	}
	escalated.labels["severity"] = "critical"
	f.set(append(base, escalated)...)
	wantRow(t, eval(t, gb, "node-a"), "alerts", Fail, `severity "warning" in the baseline, now "critical"`)

}

// The alerts an upgrade causes by itself are reported, not
// blocking, with the default policy and a baseline written at the start.
func TestUpgradeInProgressAlertsDoNotBlock(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	mixed := ser("1", "__name__", "ALERTS", "alertname", "UpgradeGuardKubeletVersionsMixed", "alertstate", "firing", "severity", "warning", "cluster", "prod")
	mismatch := ser("1", "__name__", "ALERTS", "alertname", "KubeVersionMismatch", "alertstate", "firing", "severity", "warning", "cluster", "prod")
	f.set(append(healthy(), mixed, mismatch)...)
	bl := &Baseline{Alerts: []BaselineAlert{}} // written before the upgrade began
	g, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) { c.Baseline = bl })
	e := eval(t, g, "node-a")
	wantRow(t, e, "alerts", Pass, "upgrade in progress, informational (alerts.upgrade_in_progress): KubeVersionMismatch{severity=warning}, UpgradeGuardKubeletVersionsMixed{severity=warning}")
	if e.Verdict != GO {
		t.Errorf("upgrade-in-progress alerts block: %s", dump(e))
	}
	// A baseline taken now leaves them out: they never block anyway.
	snap, err := g.Snapshot(context.Background())
	if err != nil || len(snap.Alerts) != 1 || snap.Alerts[0].Labels["alertname"] != "SomethingInfo" {
		t.Errorf("baseline %+v, %v: want only SomethingInfo", snap, err)
	}
	// The list is the policy's: empty, they block like any other.
	strict, _ := newGate(t, f, testPolicy(t, "alerts: {upgrade_in_progress: []}"))
	wantRow(t, eval(t, strict, "node-a"), "alerts", Fail, "KubeVersionMismatch{severity=warning}")
	// A real fault beside them still blocks.
	f.set(append(healthy(), mixed, ser("1", "__name__", "ALERTS", "alertname", "KubeNodeNotReady", "alertstate", "firing", "severity", "warning", "node", "node-c", "cluster", "prod"))...)
	wantRow(t, eval(t, g, "node-a"), "alerts", Fail, "KubeNodeNotReady{severity=warning,node=node-c}")
}

// The always-firing alerts never block, whatever selector and ignore list
// the policy sets.
func TestAlwaysFiringAlertsNeverBlock(t *testing.T) {
	f := newFake(t)
	f.stores = storesJSON("", "")
	f.set(healthy()...) // UpgradeGuardWatchdog, Watchdog, InfoInhibitor (severity none) and an info alert
	g, _ := newGate(t, f, testPolicy(t, "alerts: {ignore: [], selector: 'severity!=\"info\"'}"))
	e := eval(t, g, "node-a")
	wantRow(t, e, "alerts", Pass, "")
	if r := row(t, e, "alerts"); r.Value != "0 matching, 0 blocking" {
		t.Errorf("alerts row %q", r.Value)
	}
	// The default policy: none, info and the always-firing ones pass.
	d, _ := newGate(t, f, testPolicy(t, ""))
	wantRow(t, eval(t, d, "node-a"), "alerts", Pass, "")
}
