package roll

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the roll's progress metrics, on the registry the caller
// gives (the roll command serves its own on --metrics-address).
type metrics struct {
	planned     prometheus.Gauge
	replaced    prometheus.Counter
	inFlight    prometheus.Gauge
	paused      prometheus.Gauge
	evaluations *prometheus.CounterVec
	evictions   *prometheus.CounterVec
	steps       *prometheus.HistogramVec
	lastStep    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		planned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upgradeguard_roll_nodes_planned",
			Help: "Nodes the roll's plan replaces, including those already done.",
		}),
		replaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "upgradeguard_roll_nodes_replaced_total",
			Help: "Nodes this run replaced: drained, terminated, replacement Ready and workloads Running again.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upgradeguard_roll_nodes_in_progress",
			Help: "Nodes being cordoned, drained or replaced now (at most --max-unavailable).",
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "upgradeguard_roll_paused",
			Help: "1 while the gate says WAIT and the roll does not advance.",
		}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgradeguard_roll_gate_evaluations_total",
			Help: "Gate evaluations the roll made, by verdict (GO, WAIT, STOP).",
		}, []string{"verdict"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upgradeguard_roll_evictions_total",
			Help: "Eviction requests by outcome: evicted, or refused (by a PodDisruptionBudget; retried).",
		}, []string{"outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "upgradeguard_roll_step_duration_seconds",
			Help:    "Time each step of a node's replacement took: gate, cordon, surge, drain, terminate, replace (replacement Ready and workloads Running).",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600},
		}, []string{"step"}),
		lastStep: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "upgradeguard_roll_node_step_timestamp_seconds",
			Help: "When a node of the roll entered a step (Unix time).",
		}, []string{"node", "step"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.planned, m.replaced, m.inFlight, m.paused, m.evaluations, m.evictions, m.steps, m.lastStep} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
