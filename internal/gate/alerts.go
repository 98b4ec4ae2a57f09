package gate

// The alerts check: no firing alert matches the policy's selector, except
// the ignored ones and those of the baseline.

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/common/model"
)

func init() {
	registerCheck(checkDef{
		Name:  "alerts",
		Order: 20,
		// The alerts check runs even when alerts.enabled is false while a
		// watchdog is required: it reads the same ALERTS answer.
		Defaults: func(p *Policy) {
			if p.Alerts.Selector == "" {
				p.Alerts.Selector = `severity=~"warning|critical"`
			}
			if p.Alerts.Ignore == nil {
				p.Alerts.Ignore = []string{"Watchdog", "InfoInhibitor"}
			}
		},
		Validate: func(p *Policy, bad func(field, format string, args ...any)) {
			var err error
			if p.Alerts.selector, err = parseMatchers(p.Alerts.Selector); err != nil {
				bad("alerts.selector", "%v", err)
			}
			for i, name := range p.Alerts.Ignore {
				if !model.LabelValue(name).IsValid() || name == "" {
					bad(fmt.Sprintf("alerts.ignore[%d]", i), "empty or invalid alert name %q", name)
				}
			}
		},
		Run: (*Gate).checkAlerts,
	})
}

// AlertsPolicy: no firing alert may match Selector, except those named in
// Ignore (and those of the baseline).
type AlertsPolicy struct {
	Enabled *bool `yaml:"enabled"`
	// Selector is label matchers on ALERTS (default
	// `severity=~"warning|critical"`).
	Selector string `yaml:"selector"`
	// Ignore lists alert names that never block (default Watchdog,
	// InfoInhibitor; `ignore: []` ignores none).
	Ignore []string `yaml:"ignore"`
	// Pending alerts block too.
	Pending bool `yaml:"pending"`

	selector []matcher
}

// checkAlerts judges the firing alerts (row alerts) and, when the policy
// names one, the watchdog alert (row monitoring/watchdog).
func (g *Gate) checkAlerts(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Alerts
	wantWatchdog := g.policy.Monitoring.Watchdog != ""
	if !enabled(p.Enabled) && !wantWatchdog {
		return []CheckResult{skipRow("alerts", "disabled in the policy")}
	}
	parts := []string{`alertstate="firing"`}
	if p.Pending {
		parts = []string{`alertstate=~"firing|pending"`}
	}
	for _, m := range g.policy.matchers {
		parts = append(parts, m.String())
	}
	q := "ALERTS{" + strings.Join(parts, ", ") + "}"
	res, err := s.query(ctx, q)
	if err != nil {
		names := []string{"alerts"}
		if wantWatchdog {
			names = append(names, "monitoring/watchdog")
		}
		return unknownRows(q, err, names...)
	}
	var out []CheckResult
	if wantWatchdog {
		wd := CheckResult{Name: "monitoring/watchdog", Query: q, Threshold: g.policy.Monitoring.Watchdog + " firing"}
		for _, smp := range res.samples {
			if smp.labels["alertname"] == g.policy.Monitoring.Watchdog && smp.labels["alertstate"] == "firing" {
				wd.Status, wd.Value = Pass, "firing"
			}
		}
		if wd.Status == "" {
			wd.Status, wd.Value = Unknown, "absent"
			wd.Why = fmt.Sprintf("the always-firing alert %s is absent: rule evaluation or the query path is broken, so an empty ALERTS proves nothing", g.policy.Monitoring.Watchdog)
		}
		out = append(out, wd)
	}
	if !enabled(p.Enabled) {
		return append([]CheckResult{skipRow("alerts", "disabled in the policy")}, out...)
	}
	ignore := map[string]bool{}
	for _, n := range p.Ignore {
		ignore[n] = true
	}
	baseline := g.cfg.Baseline.severities(g.cfg.ReplicaLabels)
	var blocking, tolerated []string
	matching := 0
	seen := map[string]bool{}
	for _, smp := range res.samples {
		l := smp.labels
		if ignore[l["alertname"]] {
			continue
		}
		ok := true
		for _, m := range p.selector {
			if !m.matches(l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		key := alertKey(l, g.cfg.ReplicaLabels) + l["alertstate"]
		if seen[key] {
			continue // the same alert from two replicas without deduplication
		}
		seen[key] = true
		matching++
		desc := describeAlert(l)
		if sev, inBaseline := baseline[alertKey(l, g.cfg.ReplicaLabels)]; inBaseline {
			if sev == l["severity"] {
				tolerated = append(tolerated, desc)
				continue
			}
			desc += fmt.Sprintf(" (severity %q in the baseline, now %q)", sev, l["severity"])
		}
		blocking = append(blocking, desc)
	}
	ignored := "none"
	if len(p.Ignore) > 0 {
		ignored = strings.Join(p.Ignore, ", ")
	}
	r := CheckResult{Name: "alerts", Query: q,
		Value:     fmt.Sprintf("%d matching, %d blocking", matching, len(blocking)),
		Threshold: fmt.Sprintf("no alert matching {%s} (ignored: %s)", p.Selector, ignored),
	}
	if len(blocking) > 0 {
		r.Status, r.Why = Fail, list(blocking)
	} else {
		r.Status = Pass
	}
	if len(tolerated) > 0 {
		r = withNote(r, "firing since the baseline, not blocking: "+list(tolerated))
	}
	out = append([]CheckResult{withNote(r, res.note)}, out...)
	return out
}

func describeAlert(l map[string]string) string {
	var extra []string
	for _, k := range []string{"severity", "alertstate", "node", "namespace", "pdb", "zone"} {
		if v := l[k]; v != "" && !(k == "alertstate" && v == "firing") {
			extra = append(extra, k+"="+v)
		}
	}
	return l["alertname"] + "{" + strings.Join(extra, ",") + "}"
}
