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
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.active, m.transitions, m.evaluations, m.verdict, m.leader, m.lastEval, m.applyErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
