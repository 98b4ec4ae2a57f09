// Package workloads is the collector of what users reach during an upgrade:
// per Service, its ready and not-ready endpoints from its EndpointSlices; per
// Deployment, StatefulSet and DaemonSet, its desired, available, ready and
// updated replicas and how many its update strategy lets be unavailable. The
// gate's availability check compares them with a baseline; the names follow
// kube-state-metrics' (kube_deployment_status_replicas_available...).
package workloads

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// Collector exports Service endpoints and workload replicas from the shared
// EndpointSlice, Deployment, StatefulSet and DaemonSet informers. It never
// calls the API server.
type Collector struct {
	endpointSlices, deployments, statefulSets, daemonSets *kube.Informer
}

// New returns a collector over the shared informers, as kube.Informers
// provides them (the EndpointSlice informer storing *kube.EndpointSlice).
func New(endpointSlices, deployments, statefulSets, daemonSets *kube.Informer) *Collector {
	return &Collector{endpointSlices: endpointSlices, deployments: deployments, statefulSets: statefulSets, daemonSets: daemonSets}
}

// Update sends the metrics of every Service and workload in the informers'
// caches. When an informer is failing, it still sends the last known state
// and returns the error.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	updateServices(c.endpointSlices.GetStore().List(), ch)
	updateDeployments(c.deployments.GetStore().List(), ch)
	updateStatefulSets(c.statefulSets.GetStore().List(), ch)
	updateDaemonSets(c.daemonSets.GetStore().List(), ch)
	return errors.Join(c.endpointSlices.Healthy(), c.deployments.Healthy(), c.statefulSets.Healthy(), c.daemonSets.Healthy())
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

var _ collectors.Collector = (*Collector)(nil)
