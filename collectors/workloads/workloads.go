// Package workloads is the collector of what users reach during an upgrade:
// per Service, its ready and not-ready endpoints from its EndpointSlices; per
// Deployment, StatefulSet and DaemonSet, its desired, available, ready and
// updated replicas and how many its update strategy lets be unavailable. The
// gate's availability check compares them with a baseline; the names follow
// kube-state-metrics' (kube_deployment_status_replicas_available...).
//
// The series are rendered when the informers deliver an object, as
// kube-state-metrics renders them (pkg/metrics_store), and kept in
// metricstore.Stores: a scrape only writes them out.
package workloads

import (
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/cache"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

// Options configure the collector.
type Options struct {
	// ConstLabels end every series, as metricstore.ConstLabels renders them
	// (the exporter's --cluster); "" for none.
	ConstLabels string
}

// Collector exports Service endpoints and workload replicas from the shared
// EndpointSlice, Deployment, StatefulSet and DaemonSet informers. It never
// calls the API server, and computes nothing on a scrape.
//
// One Store per resource rather than one for all: an object's store entry
// has an offset per family of its store (5 families instead of 17), keys
// of different resources cannot collide, and each informer's handler takes
// only its own store's lock.
type Collector struct {
	endpointSlices *kube.Informer
	services       *metricstore.Store
	watched        []watched
	stores         []*metricstore.Store
	err            error // a handler that could not be registered
}

// watched is one informer and the handler that renders its objects.
type watched struct {
	informer *kube.Informer
	handler  cache.ResourceEventHandler
}

// New returns a collector over the shared informers, as kube.Informers
// provides them (the EndpointSlice informer storing *kube.EndpointSlice,
// indexed by kube.EndpointSliceServiceIndex). It registers its event
// handlers; call it before the informers start so that they render every
// object of the initial list.
func New(endpointSlices, deployments, statefulSets, daemonSets *kube.Informer, opts Options) *Collector {
	c := &Collector{
		endpointSlices: endpointSlices,
		services:       metricstore.NewStore(opts.ConstLabels, serviceFamilies...),
	}
	if _, ok := endpointSlices.GetIndexer().GetIndexers()[kube.EndpointSliceServiceIndex]; !ok {
		c.err = fmt.Errorf("%s informer has no %q index: no Service can be rendered", endpointSlices.Name(), kube.EndpointSliceServiceIndex)
	}
	deploymentStore := metricstore.NewStore(opts.ConstLabels, deploymentFamilies...)
	statefulSetStore := metricstore.NewStore(opts.ConstLabels, statefulSetFamilies...)
	daemonSetStore := metricstore.NewStore(opts.ConstLabels, daemonSetFamilies...)
	c.stores = []*metricstore.Store{c.services, deploymentStore, statefulSetStore, daemonSetStore}
	c.watched = []watched{
		{informer: endpointSlices, handler: c.sliceHandler()},
		{informer: deployments, handler: objectHandler(deploymentStore, renderDeployment)},
		{informer: statefulSets, handler: objectHandler(statefulSetStore, renderStatefulSet)},
		{informer: daemonSets, handler: objectHandler(daemonSetStore, renderDaemonSet)},
	}
	var errs []error
	for i := range c.watched {
		w := &c.watched[i]
		if _, err := w.informer.AddEventHandler(w.handler); err != nil {
			errs = append(errs, fmt.Errorf("watching the %s informer: %w", w.informer.Name(), err))
		}
	}
	c.err = errors.Join(append(errs, c.err)...)
	return c
}

// Update sends nothing: the series are kept rendered and written by
// WriteMetrics. It returns an error when an informer is failing or has not
// synced - kube.Informer counts as synced only once the collector's handlers
// have rendered all of its initial objects; WriteMetrics then writes the
// last known, or a partial, state.
func (c *Collector) Update(chan<- prometheus.Metric) error {
	errs := []error{c.err}
	for _, w := range c.watched {
		errs = append(errs, w.informer.Healthy())
	}
	return errors.Join(errs...)
}

// WriteMetrics writes the rendered series of every Service and workload in
// the text exposition format.
func (c *Collector) WriteMetrics(w io.Writer) error {
	for _, s := range c.stores {
		if err := s.WriteMetrics(w); err != nil {
			return err
		}
	}
	return nil
}

// objectHandler renders an object of type T into store, keyed by
// namespace/name, when it is added or updated, and drops its series when it
// is deleted, a deletion the informer missed included
// (cache.DeletedFinalStateUnknown). A relist reaches it as one event per
// object - with client-go 0.37's defaults (InOrderInformers, AtomicFIFO) the
// deletions first, then the updates (processReplacedAllInfo in
// tools/cache/controller.go); with the DeltaFIFO the updates first - so each
// object's series are replaced or dropped one at a time: the store never
// goes empty, nor loses an object that is still there.
func objectHandler[T interface {
	GetNamespace() string
	GetName() string
}](store *metricstore.Store, render func(*metricstore.Builder, T)) cache.ResourceEventHandler {
	update := func(obj any) {
		o, ok := obj.(T)
		if !ok {
			return
		}
		store.Update(o.GetNamespace()+"/"+o.GetName(), func(b *metricstore.Builder) { render(b, o) })
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(obj any) {
			// The key of a tombstone is the informer's, namespace/name.
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				store.Delete(key)
			}
		},
	}
}

var (
	_ collectors.Collector = (*Collector)(nil)
	_ metricstore.Writer   = (*Collector)(nil)
)
