package workloads

import (
	"k8s.io/client-go/tools/cache"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

var (
	serviceEndpointsFamily = &metricstore.Family{Name: "upgradeguard_service_endpoints",
		Help: "Endpoints of the Service in its EndpointSlices, by whether they are ready to receive traffic (ready=\"true\") or not (ready=\"false\"); each address counted once.",
		Type: metricstore.Gauge, LabelNames: []string{"namespace", "service", "ready"}}
	serviceServingTerminatingFamily = &metricstore.Family{Name: "upgradeguard_service_serving_terminating_endpoints",
		Help: "Not-ready endpoints of the Service that are terminating but still serving: kube-proxy sends traffic to them only while no endpoint is ready.",
		Type: metricstore.Gauge, LabelNames: []string{"namespace", "service"}}
	serviceGateHoldFamily = &metricstore.Family{Name: "upgradeguard_service_gate_hold",
		Help: "1 for a Service of upgradeguard gate hold (labelled app.kubernetes.io/name=upgradeguard and app.kubernetes.io/component=hold, which the EndpointSlice controller copies to its slices): its endpoints are ready only while the gate says GO, so the gate sets it aside. No series for other Services.",
		Type: metricstore.Gauge, LabelNames: []string{"namespace", "service"}}
	serviceFamilies = []*metricstore.Family{serviceEndpointsFamily, serviceServingTerminatingFamily, serviceGateHoldFamily}
)

// GateHold reports whether the Service of these slices (all of one
// Service) is gate hold's own: one of its slices carries the hold's labels
// (kube.EndpointSlice.GateHold), copied from the Service by the
// EndpointSlice controller. Its endpoints are ready only on GO, so neither
// the gate nor the roll's downtime sampler counts them.
func GateHold(slices []*kube.EndpointSlice) bool {
	for _, s := range slices {
		if s.GateHold {
			return true
		}
	}
	return false
}

// sliceHandler re-renders the Service of a slice that is added, updated or
// deleted from all of the Service's slices (the informer's
// kube.EndpointSliceServiceIndex), so that a scrape only writes out its
// series. A slice whose Service label changed re-renders both Services; a
// Service whose last slice went away is dropped. The informer's index is
// updated before the handler is told, and may be ahead of the event: every
// render reads the latest state, and the handler's last call for a
// Service, which follows its last change, renders it as it is. On a relist,
// client-go 0.37 replaces the whole index before telling the handler of
// any change (AtomicFIFO), so a Service whose slices were re-cut (one
// deleted, another listing the same endpoints created) is never rendered
// from part of them; TestRelistNeverHalf checks it.
func (c *Collector) sliceHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.renderService(serviceKey(obj)) },
		UpdateFunc: func(old, obj any) {
			if before, after := serviceKey(old), serviceKey(obj); before != after {
				c.renderService(before)
			}
			c.renderService(serviceKey(obj))
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				if _, known := tomb.Obj.(*kube.EndpointSlice); !known {
					// A deletion the informer missed, of a slice it
					// no longer knows: which Service it was of is
					// unknown, so drop every Service left without a
					// slice.
					c.dropServicesWithoutSlices()
					return
				}
				obj = tomb.Obj
			}
			c.renderService(serviceKey(obj))
		},
	}
}

// serviceKey is the key of the Service of a slice, "" for none.
func serviceKey(obj any) string {
	if s, ok := obj.(*kube.EndpointSlice); ok {
		return s.ServiceKey()
	}
	return ""
}

// renderService renders the series of the Service with key (namespace/name)
// from its slices, and drops them when it has none left. The EndpointSlice
// controller keeps an empty slice for a Service with a selector and no
// pods, so such a Service has series of 0. Slices without the
// kubernetes.io/service-name label belong to no Service and are ignored.
// Readiness follows the slice's conditions, which the EndpointSlice
// controller derives from the pods (ready: the pod is Ready and not
// terminating, or the Service publishes not-ready addresses); the fallback to
// serving terminating endpoints is kube-proxy's (pkg/proxy/topology.go,
// CategorizeEndpoints).
func (c *Collector) renderService(key string) {
	if key == "" {
		return
	}
	objs, err := c.endpointSlices.GetIndexer().ByIndex(kube.EndpointSliceServiceIndex, key)
	if err != nil {
		return // no index: New's error says so on every scrape
	}
	slices := make([]*kube.EndpointSlice, 0, len(objs))
	for _, obj := range objs {
		if s, ok := obj.(*kube.EndpointSlice); ok {
			slices = append(slices, s)
		}
	}
	if len(slices) == 0 {
		c.services.Delete(key)
		return
	}
	namespace, name := slices[0].Namespace, slices[0].Service
	n := kube.CountEndpoints(slices)
	hold := GateHold(slices)
	c.services.Update(key, func(b *metricstore.Builder) {
		b.Add(serviceEndpointsFamily, float64(n.Ready), namespace, name, "true")
		b.Add(serviceEndpointsFamily, float64(n.NotReady), namespace, name, "false")
		b.Add(serviceServingTerminatingFamily, float64(n.ServingTerminating), namespace, name)
		if hold {
			b.Add(serviceGateHoldFamily, 1, namespace, name)
		}
	})
}

// dropServicesWithoutSlices re-renders every Service the collector holds,
// which drops those left without a slice in the informer's index.
func (c *Collector) dropServicesWithoutSlices() {
	for _, key := range c.services.Keys() {
		c.renderService(key)
	}
}
