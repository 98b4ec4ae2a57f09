package gate

// The monitoring/watchdog row: an empty ALERTS answer proves nothing unless
// rule evaluation is proven alive. When the rule evaluator goes away (a
// Thanos Ruler stopped, Prometheus without the rule files), Thanos Query
// forgets it after its --store.unhealthy-timeout and ALERTS comes back
// empty without a warning; only an alert that always fires tells that
// silence from "no alert fires".

import (
	"context"
	"fmt"
)

// checkWatchdog requires the policy's watchdog alert (default
// UpgradeGuardWatchdog) to be firing: PASS when it is, UNKNOWN when it is
// absent, SKIP only with an explicit `watchdog: ""`.
func (g *Gate) checkWatchdog(ctx context.Context, s *evalState) CheckResult {
	name := *g.policy.Monitoring.Watchdog
	if name == "" {
		return skipRow("monitoring/watchdog", `monitoring.watchdog: "" (the policy opts out: an empty ALERTS is trusted without proof that rules are evaluated)`)
	}
	q := g.alertsQuery(g.policy.Alerts.Pending)
	r := CheckResult{Name: "monitoring/watchdog", Query: q, Threshold: name + " firing"}
	res, err := s.query(ctx, q)
	if err != nil {
		r.Status, r.Why = Unknown, err.Error()
		return r
	}
	for _, smp := range res.samples {
		if smp.labels["alertname"] == name && smp.labels["alertstate"] == "firing" {
			r.Status, r.Value = Pass, "firing"
			return withNote(r, res.note)
		}
	}
	r.Status, r.Value = Unknown, "absent"
	r.Why = fmt.Sprintf("the always-firing alert %s is not firing in this query's ALERTS, so an empty ALERTS proves nothing: "+
		"no rule evaluator that this query reaches runs the bundle's rules, or rule evaluation stopped "+
		"(a Thanos Ruler that went away is forgotten by Thanos Query after its --store.unhealthy-timeout, without a warning). "+
		"Fix: load deploy/generated's rules (prometheusrule.yaml, or prometheus-rules.yaml for a Prometheus or Thanos Ruler rule file) "+
		"into the evaluator of this cluster's alerts, with the external labels the policy's matchers select; "+
		`or opt out with the policy line monitoring.watchdog: ""`, name)
	return withNote(r, res.note)
}
