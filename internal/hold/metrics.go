package hold

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the hold's own metrics, on the registry the caller gives.
type metrics struct {
	active      *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	evaluations *prometheus.CounterVec
	verdict     *prometheus.GaugeVec
	leader      prometheus.Gauge
	lastEval    prometheus.Gauge
	applyErrors *prometheus.CounterVec

	// What the budgets of a paused karpenter.sh/v1 NodePool do not hold
	// (karpenter_expiry.go): series only while the pool is paused and its
	// expireAfter is not Never.
	expireAfter      *prometheus.GaugeVec
	terminationGrace *prometheus.GaugeVec
	expiringClaims   *prometheus.GaugeVec
	nextExpiry       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_active",
			Help: "1 while the hold keeps this target paused (target: nodepool/NAME, kops-readiness, autoscaler/GROUP, asg/NAME), else 0.",
		}, []string{"target"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgradeguard_hold_transitions_total",
			Help: "Changes the hold made to a target, by action: pause, resume, cancel (an instance refresh), yield (a person changed the target while it was paused).",
		}, []string{"target", "action"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgradeguard_hold_evaluations_total",
			Help: "Gate evaluations the hold made, by verdict after the consecutive rule (GO, WAIT, STOP).",
		}, []string{"verdict"}),
		verdict: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_verdict",
			Help: "1 for the hold's verdict after its last evaluation (GO, WAIT, STOP), 0 for the others.",
		}, []string{"verdict"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_leader",
			Help: "1 while this replica holds the leader Lease and applies the verdict to the targets.",
		}),
		lastEval: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_last_evaluation_timestamp_seconds",
			Help: "When the last gate evaluation of this replica ended (Unix time).",
		}),
		applyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgradeguard_hold_apply_errors_total",
			Help: "Failures to apply a decision to a kind of target (retried at the next evaluation).",
		}, []string{"kind"}),
		expireAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_nodepool_expire_after_seconds",
			Help: "spec.template.spec.expireAfter of a karpenter.sh/v1 NodePool the hold keeps paused: Karpenter v1 expires NodeClaims whatever the disruption budgets say, so the hold does not stop it. A series only while paused and not Never.",
		}, []string{"nodepool"}),
		terminationGrace: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_nodepool_termination_grace_period_seconds",
			Help: "spec.template.spec.terminationGracePeriod of such a paused NodePool: after this long an expired node's pods are deleted, PDBs or not. No series when unset (the drain waits for PDBs indefinitely).",
		}, []string{"nodepool"}),
		expiringClaims: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_nodepool_nodeclaims_expiring_next_hour",
			Help: "NodeClaims of such a paused NodePool (label karpenter.sh/nodepool, not being deleted) whose creation plus spec.expireAfter falls within the next hour or has passed: Karpenter deletes them during the hold.",
		}, []string{"nodepool"}),
		nextExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upgradeguard_hold_nodepool_next_expiry_timestamp_seconds",
			Help: "When the first NodeClaim of such a paused NodePool expires (Unix time; may be past). No series when none of its NodeClaims expires.",
		}, []string{"nodepool"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.active, m.transitions, m.evaluations, m.verdict, m.leader, m.lastEval, m.applyErrors,
		m.expireAfter, m.terminationGrace, m.expiringClaims, m.nextExpiry} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
