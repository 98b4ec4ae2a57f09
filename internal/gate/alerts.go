package gate

// The alerts check: no firing alert matches the policy's selector, except
// the always-firing ones, those that only say an upgrade is in progress,
// the ignored ones and those of the baseline.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/upgradeguard/upgradeguard/alerts"
)

func init() {
	registerCheck(checkDef{
		Name:    "alerts",
		Order:   20,
		Switch:  "alerts.enabled: false",
		Enabled: func(p *Policy) bool { return enabled(p.Alerts.Enabled) },
		Defaults: func(p *Policy) {
			if p.Alerts.Selector == "" {
				p.Alerts.Selector = `severity=~"warning|critical"`
			}
			if p.Alerts.Ignore == nil {
				p.Alerts.Ignore = []string{"Watchdog", "InfoInhibitor"}
			}
			if p.Alerts.UpgradeInProgress == nil {
				p.Alerts.UpgradeInProgress = slices.Clone(alerts.UpgradeInProgressAlerts)
			}
		},
		Validate: func(p *Policy, bad func(field, format string, args ...any)) {
			var err error
			if p.Alerts.selector, err = parseMatchers(p.Alerts.Selector); err != nil {
				bad("alerts.selector", "%v", err)
			}
			for field, names := range map[string][]string{"alerts.ignore": p.Alerts.Ignore, "alerts.upgrade_in_progress": p.Alerts.UpgradeInProgress} {
				for i, name := range names {
					if !model.LabelValue(name).IsValid() || name == "" {
						bad(fmt.Sprintf("%s[%d]", field, i), "empty or invalid alert name %q", name)
					}
				}
			}
		},
		Run: (*Gate).checkAlerts,
	})
}

// AlertsPolicy: no firing alert may match Selector, except those named in
// Ignore or UpgradeInProgress (and those of the baseline). The
// always-firing alerts (alwaysFiring) never block, whatever the policy.
type AlertsPolicy struct {
	Enabled *bool `yaml:"enabled"`
	// Selector is label matchers on ALERTS (default
	// `severity=~"warning|critical"`).
	Selector string `yaml:"selector"`
	// Ignore lists alert names that never block (default Watchdog,
	// InfoInhibitor; `ignore: []` ignores none).
	Ignore []string `yaml:"ignore"`
	// UpgradeInProgress lists the alerts that an ordinary upgrade causes by
	// itself (default alerts.UpgradeInProgressAlerts: KubeVersionMismatch,
	// UpgradeGuardKubeletVersionsMixed): reported in the alerts row, never
	// blocking. `upgrade_in_progress: []` makes them block like any other.
	UpgradeInProgress []string `yaml:"upgrade_in_progress"`
	// Pending alerts block too.
	Pending bool `yaml:"pending"`

	selector []matcher
}

// alwaysFiring are alerts that fire all the time by design, to prove that
// alerting works: kube-prometheus' Watchdog (severity none) and
// InfoInhibitor (severity none, firing while an info alert fires), and the
// bundle's alerts.WatchdogAlert. They never block, whatever the selector
// and the ignore list say; the monitoring check requires the watchdog.
var alwaysFiring = map[string]bool{"Watchdog": true, "InfoInhibitor": true, alerts.WatchdogAlert: true}

// alertsQuery is the ALERTS selector of the firing (and, with pending,
// pending) alerts of the policy's matchers. The monitoring check's watchdog
// row reads the same query, sent once per evaluation.
func (g *Gate) alertsQuery(pending bool) string {
	parts := []string{`alertstate="firing"`}
	if pending {
		parts = []string{`alertstate=~"firing|pending"`}
	}
	for _, m := range g.policy.matchers {
		parts = append(parts, m.String())
	}
	return "ALERTS{" + strings.Join(parts, ", ") + "}"
}

// checkAlerts judges the firing alerts: row alerts. Alerts on gate hold's
// own Deployment, ReplicaSets, pods, Service or PDB never block (they say
// what the gate said: gatehold.go); the row names them.
func (g *Gate) checkAlerts(ctx context.Context, s *evalState) []CheckResult {
	p := g.policy.Alerts
	q := g.alertsQuery(p.Pending)
	res, err := s.query(ctx, q)
	if err != nil {
		return unknownRows(q, err, "alerts")
	}
	ignore := map[string]bool{}
	for _, n := range p.Ignore {
		ignore[n] = true
	}
	inProgress := map[string]bool{}
	for _, n := range p.UpgradeInProgress {
		inProgress[n] = true
	}
	baseline := g.cfg.Baseline.severities(g.cfg.ReplicaLabels)
	var blocking, tolerated, upgrading, holds, shutDown []string
	matching := 0
	seen := map[string]bool{}
	// Alerts on gate hold's own objects (its pods are ready only on GO)
	// are set aside: the marks are asked for only when an alert may name
	// one (gatehold.go).
	var hold gateHold
	var holdErr error
	asked := false
	// Alerts on a node whose machine is shut down (nodes.shut_down_taints)
	// are set aside as the nodes rows set the node aside: kube-prometheus'
	// KubeNodeNotReady{node} fires for a stopped or warm-pool instance's
	// node. The node view is the nodes check's query, sent once.
	var nodes *nodeView
	nodesAsked := false
	for _, smp := range res.samples {
		l := smp.labels
		name := l["alertname"]
		if alwaysFiring[name] || ignore[name] {
			continue
		}
		key := alertKey(l, g.cfg.ReplicaLabels) + l["alertstate"]
		if seen[key] {
			continue // the same alert from two replicas without deduplication
		}
		seen[key] = true
		if inProgress[name] {
			upgrading = append(upgrading, describeAlert(l))
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
		matching++
		desc := describeAlert(l)
		if mayNameGateHold(l) {
			if !asked {
				asked = true
				hold, _, holdErr = g.gateHold(ctx, s)
			}
			if what := hold.alertNames(l); what != "" {
				holds = append(holds, desc+" on "+what)
				continue
			}
		}
		if node := l["node"]; node != "" && len(g.policy.Nodes.ShutDownTaints) > 0 {
			if !nodesAsked {
				nodesAsked = true
				if v, err := g.nodeView(ctx, s); err == nil {
					nodes = v
				}
			}
			if n := nodes.node(node); n != nil && n.shutDown != "" {
				shutDown = append(shutDown, fmt.Sprintf("%s (node %s %s)", desc, node, n.shutDown))
				continue
			}
		}
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
		Threshold: fmt.Sprintf("no alert matching {%s} (ignored: %s; never blocking: the always-firing ones, those of an upgrade in progress, those on the gate hold's own objects and those on nodes shut down)", p.Selector, ignored),
	}
	if len(blocking) > 0 {
		r.Status, r.Why = Fail, list(blocking)
	} else {
		r.Status = Pass
	}
	if len(upgrading) > 0 {
		r = withNote(r, "upgrade in progress, informational (alerts.upgrade_in_progress): "+list(upgrading))
	}
	if len(tolerated) > 0 {
		r = withNote(r, "firing since the baseline, not blocking: "+list(tolerated))
	}
	if len(holds) > 0 {
		r = withNote(r, "set aside, on "+gateHoldWhy+": "+list(holds))
	}
	if len(shutDown) > 0 {
		r = withNote(r, "set aside, on nodes shut down (serving nothing): "+list(shutDown))
	}
	if holdErr != nil && len(blocking) > 0 {
		r = withNote(r, holdErr.Error())
	}
	return []CheckResult{withNote(r, res.note)}
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
