package gate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPolicyDefaults(t *testing.T) {
	p, err := ParsePolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultPolicy()
	if p.Consecutive != 2 || time.Duration(p.Interval) != 30*time.Second || p.Job != "upgradeguard.*" ||
		p.Alerts.Selector != `severity=~"warning|critical"` || strings.Join(p.Alerts.Ignore, ",") != "Watchdog,InfoInhibitor" ||
		time.Duration(*p.Monitoring.AWSMaxAge) != 15*time.Minute || time.Duration(*p.Nodes.TransitionsWindow) != 10*time.Minute ||
		!enabled(p.Nodes.Enabled) || !enabled(p.Capacity.IPs) || p.Capacity.MaxQuotaUtilization != 1 {
		t.Errorf("defaults %+v", p)
	}
	if d.Consecutive != p.Consecutive || d.Job != p.Job {
		t.Errorf("DefaultPolicy differs from an empty file")
	}
	// The defaults: the bundle's watchdog required, the upgrade's
	// own alerts informational, leaving and starting nodes set aside.
	if *p.Monitoring.Watchdog != "UpgradeGuardWatchdog" ||
		strings.Join(p.Alerts.UpgradeInProgress, ",") != "KubeVersionMismatch,UpgradeGuardKubeletVersionsMixed" ||
		time.Duration(*p.Nodes.StartupGrace) != 5*time.Minute ||
		strings.Join(p.Nodes.LeavingTaints, ",") != strings.Join(DefaultLeavingTaints, ",") || !strings.HasPrefix(strings.Join(p.Nodes.LeavingTaints, ","), "ToBeDeletedByClusterAutoscaler,karpenter.sh/disrupted,karpenter.sh/disruption,") ||
		strings.Join(p.Nodes.ShutDownTaints, ",") != "node.cloudprovider.kubernetes.io/shutdown,node.kubernetes.io/out-of-service" {
		t.Errorf("defaults: watchdog %q, upgrade_in_progress %v, startup_grace %s, leaving_taints %v",
			*p.Monitoring.Watchdog, p.Alerts.UpgradeInProgress, *p.Nodes.StartupGrace, p.Nodes.LeavingTaints)
	}
	// Opting out takes explicit lines; a YAML null keeps the default.
	o, err := ParsePolicy([]byte("monitoring: {watchdog: \"\"}\nalerts: {upgrade_in_progress: []}\nnodes: {leaving_taints: [], startup_grace: 0s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if *o.Monitoring.Watchdog != "" || len(o.Alerts.UpgradeInProgress) != 0 || len(o.Nodes.LeavingTaints) != 0 || *o.Nodes.StartupGrace != 0 {
		t.Errorf("explicit opt-outs: %+v", o)
	}
	n, err := ParsePolicy([]byte("monitoring:\n  watchdog:\n"))
	if err != nil || *n.Monitoring.Watchdog != "UpgradeGuardWatchdog" {
		t.Errorf("watchdog: with no value keeps the default: %v %v", err, n.Monitoring.Watchdog)
	}
	p, err = ParsePolicy([]byte("alerts: {ignore: []}\nnodes: {transitions_window: 0s}\ninterval: 1d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Alerts.Ignore) != 0 || *p.Nodes.TransitionsWindow != 0 || time.Duration(p.Interval) != 24*time.Hour {
		t.Errorf("explicit values: %+v", p)
	}
}

func TestBadPolicyNamesTheField(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"alerts:\n  severiy: critical\n", `line 2: unknown field "severiy" in alerts (known fields: enabled, selector, ignore, upgrade_in_progress, pending)`},
		{"consecutiv: 3\n", `line 1: unknown field "consecutiv" in the top level`},
		{"custom:\n- name: a\n  query: up\n  maximum: 1\n", `line 4: unknown field "maximum" in custom[]`},
		{"drain:\n  allow_unmanaged_pods: yes please\n", `line 2 (drain.allow_unmanaged_pods): "yes please" is a str, but the field wants true or false`},
		{"consecutive: two\n", `line 1 (consecutive): "two" is a str, but the field wants an integer`},
		{"interval: soon\n", `line 1 (interval): bad duration "soon"`},
		{"nodes:\n  startup_grace: 5 minutes\n", `line 2 (nodes.startup_grace): bad duration "5 minutes"`},
		{"custom:\n- name: a\n  query: up\n- name: b\n  query: up\n  max: lots\n", `line 6 (custom[1].max): "lots" is a str, but the field wants a number`},
		{"consecutive: -1\n", "consecutive: -1; want at least 1"},
		{"alerts: {selector: 'severity=critical'}\n", `alerts.selector: bad label matcher at "severity=critical"`},
		{"alerts: {selector: 'severity=~\"(\"'}\n", `alerts.selector: bad regular expression "("`},
		{"matchers: 'job=\"x\"'\n", "matchers: job is set by the gate itself"},
		{"job: '('\n", `job: bad regular expression "("`},
		{"custom:\n- name: a\n  query: up\n", `custom[0]: "a" needs max, min or empty`},
		{"custom:\n- name: a\n  max: 1\n", "custom[0].query: missing"},
		{"custom:\n- query: up\n  max: 1\n", "custom[0].name: missing"},
		{"custom:\n- {name: a, query: up, empty: true, max: 1}\n", "empty: true cannot be combined"},
		{"custom:\n- {name: a, query: up, min: 2, max: 1}\n", "min 2 above max 1"},
		{"custom:\n- {name: a, query: up, max: 1}\n- {name: a, query: up, max: 1}\n", `custom[1].name: "a" used twice`},
		{"capacity: {max_quota_utilization: 1.5}\n", "capacity.max_quota_utilization: 1.5; want a share in (0, 1]"},
		{"capacity: {ips_needed: -3}\n", "capacity.ips_needed: -3"},
		{"consecutive: 1\n---\nconsecutive: 2\n", "more than one YAML document"},
	} {
		_, err := ParsePolicy([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("policy %q: error %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "gate.yaml")
	if err := os.WriteFile(path, []byte("nodes:\n  transitions_windw: 5m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPolicy(path)
	if err == nil || !strings.Contains(err.Error(), "policy file "+path+": line 2: unknown field \"transitions_windw\" in nodes") {
		t.Errorf("LoadPolicy: %v", err)
	}
	if _, err := LoadPolicy(filepath.Join(t.TempDir(), "none.yaml")); err == nil || !strings.Contains(err.Error(), "none.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestMatchers(t *testing.T) {
	ms, err := parseMatchers(`{severity=~"warning|critical", team!="infra",x!~` + "`a.*`" + `, y="q\"uote"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 || ms[3].value != `q"uote` {
		t.Fatalf("%+v", ms)
	}
	l := map[string]string{"severity": "critical", "team": "apps", "x": "b", "y": `q"uote`}
	for _, m := range ms {
		if !m.matches(l) {
			t.Errorf("%s does not match %v", m, l)
		}
	}
	l["severity"] = "criticality" // regexes are anchored
	if ms[0].matches(l) {
		t.Error("unanchored regex")
	}
}
