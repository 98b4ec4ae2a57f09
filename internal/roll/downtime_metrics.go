package roll

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The downtime sampler's numbers as metrics, rendered from its state at
// each scrape: the same numbers as the report.
var (
	serviceNoReadyDesc = prometheus.NewDesc("upgradeguard_roll_service_no_ready_endpoints_seconds_total",
		"Seconds the Service had no ready endpoint during the roll, after it had one (sampled every --sample-interval).",
		[]string{"namespace", "service"}, nil)
	serviceOutagesDesc = prometheus.NewDesc("upgradeguard_roll_service_outages_total",
		"Times the Service lost its last ready endpoint during the roll.",
		[]string{"namespace", "service"}, nil)
	serviceMinReadyDesc = prometheus.NewDesc("upgradeguard_roll_service_ready_endpoints_min",
		"Fewest ready endpoints the Service had at a sample during the roll.",
		[]string{"namespace", "service"}, nil)
	probeRequestsDesc = prometheus.NewDesc("upgradeguard_roll_probe_requests_total",
		"Requests the roll sent to a probe of the gate policy, by outcome: ok, failed (unexpected status or error), timeout.",
		[]string{"probe", "outcome"}, nil)
	unobservedDesc = prometheus.NewDesc("upgradeguard_roll_endpoints_unobserved_seconds_total",
		"Seconds the roll could not read the EndpointSlices (cache not synced or watch failing): downtime then is unknown.",
		nil, nil)
	zeroDowntimeDesc = prometheus.NewDesc("upgradeguard_roll_zero_downtime",
		"1 while no Service lost its last ready endpoint, no probe failed and the endpoints were observed the whole roll; else 0.",
		nil, nil)
	nodeStepDesc = prometheus.NewDesc("upgradeguard_roll_node_step_duration_seconds",
		"How long each step of a finished node took: gate (wait), cordon, surge, drain, terminate, replace (replacement Ready and workloads Running).",
		[]string{"node", "step"}, nil)
)

// Describe implements prometheus.Collector.
func (s *sampler) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(s, ch) }

// Collect implements prometheus.Collector.
func (s *sampler) Collect(ch chan<- prometheus.Metric) {
	r := s.report("")
	for _, sd := range r.Services {
		if sd.NeverReady {
			continue
		}
		ch <- prometheus.MustNewConstMetric(serviceNoReadyDesc, prometheus.CounterValue, sd.NoReadySeconds, sd.Namespace, sd.Service)
		ch <- prometheus.MustNewConstMetric(serviceOutagesDesc, prometheus.CounterValue, float64(sd.Outages), sd.Namespace, sd.Service)
		ch <- prometheus.MustNewConstMetric(serviceMinReadyDesc, prometheus.GaugeValue, float64(sd.MinReady), sd.Namespace, sd.Service)
	}
	for _, p := range r.Probes {
		ch <- prometheus.MustNewConstMetric(probeRequestsDesc, prometheus.CounterValue, float64(p.Requests-p.Failed-p.Timeouts), p.Probe, "ok")
		ch <- prometheus.MustNewConstMetric(probeRequestsDesc, prometheus.CounterValue, float64(p.Failed), p.Probe, "failed")
		ch <- prometheus.MustNewConstMetric(probeRequestsDesc, prometheus.CounterValue, float64(p.Timeouts), p.Probe, "timeout")
	}
	ch <- prometheus.MustNewConstMetric(unobservedDesc, prometheus.CounterValue, r.UnobservedSeconds)
	zero := 0.0
	if r.ZeroDowntime {
		zero = 1
	}
	ch <- prometheus.MustNewConstMetric(zeroDowntimeDesc, prometheus.GaugeValue, zero)
	seen := map[string]bool{}
	for i := len(r.Nodes) - 1; i >= 0; i-- { // a node's last result only
		n := r.Nodes[i]
		if seen[n.Node] {
			continue
		}
		seen[n.Node] = true
		for _, st := range []struct {
			step string
			v    float64
		}{{"gate", n.Gate}, {"cordon", n.Cordon}, {"surge", n.Surge}, {"drain", n.Drain}, {"deregister", n.Deregister}, {"terminate", n.Terminate}, {"replace", n.Replace}} {
			ch <- prometheus.MustNewConstMetric(nodeStepDesc, prometheus.GaugeValue, st.v, n.Node, st.step)
		}
	}
}
