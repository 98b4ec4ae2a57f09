package alerts

import (
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestUpgradeInProgressLabelAgreesWithTheList: the bundle marks exactly its
// own alerts that UpgradeInProgressAlerts names, every one of ours on the
// list exists, and the other entries are not ours (they come from other
// rule sets such as the kubernetes-mixin).
func TestUpgradeInProgressLabelAgreesWithTheList(t *testing.T) {
	for setName, o := range optionSets() {
		ours := map[string]bool{}
		for _, a := range List(o) {
			ours[a.Name] = true
		}
		for _, name := range UpgradeInProgressAlerts {
			switch {
			case strings.HasPrefix(name, "UpgradeGuard") && !ours[name]:
				t.Errorf("%s: UpgradeInProgressAlerts names %s, which the bundle lacks", setName, name)
			case !strings.HasPrefix(name, "UpgradeGuard") && ours[name]:
				t.Errorf("%s: %s is in the bundle without the UpgradeGuard prefix", setName, name)
			}
		}
		if slices.Contains(UpgradeInProgressAlerts, WatchdogAlert) {
			t.Errorf("the watchdog is no sign of an upgrade")
		}

		// Read the labels back from the generated rule file.
		b, err := RuleFileYAML(o)
		if err != nil {
			t.Fatal(err)
		}
		var file struct {
			Groups []struct {
				Rules []struct {
					Alert  string            `json:"alert"`
					Labels map[string]string `json:"labels"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			t.Fatal(err)
		}
		marked := 0
		for _, g := range file.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				v, has := r.Labels[UpgradeInProgressLabel]
				want := slices.Contains(UpgradeInProgressAlerts, r.Alert)
				switch {
				case want && v != "true":
					t.Errorf("%s: %s lacks %s: \"true\"", setName, r.Alert, UpgradeInProgressLabel)
				case !want && has:
					t.Errorf("%s: %s has %s but is not in UpgradeInProgressAlerts", setName, r.Alert, UpgradeInProgressLabel)
				}
				if want {
					marked++
				}
			}
		}
		if marked == 0 {
			t.Errorf("%s: no rule marked %s", setName, UpgradeInProgressLabel)
		}
	}
}

// TestWatchdog: the bundle carries an always-firing watchdog, as
// kube-prometheus does, for the gate to require.
func TestWatchdog(t *testing.T) {
	var found []Alert
	for _, a := range List(DefaultOptions()) {
		if a.Name == WatchdogAlert {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d rules named %s, want 1", len(found), WatchdogAlert)
	}
	if a := found[0]; a.Expr != "vector(1)" || a.For != 0 || a.Severity != "none" {
		t.Errorf("watchdog %+v: want expr vector(1), no for, severity none", a)
	}
}
