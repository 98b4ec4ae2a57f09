package workloads

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

var (
	serviceEndpointsDesc = prometheus.NewDesc("upgradeguard_service_endpoints",
		"Endpoints of the Service in its EndpointSlices, by whether they are ready to receive traffic (ready=\"true\") or not (ready=\"false\"); each address counted once.",
		[]string{"namespace", "service", "ready"}, nil)
	serviceServingTerminatingDesc = prometheus.NewDesc("upgradeguard_service_serving_terminating_endpoints",
		"Not-ready endpoints of the Service that are terminating but still serving: kube-proxy sends traffic to them only while no endpoint is ready.",
		[]string{"namespace", "service"}, nil)
)

// endpointCounts are one Service's endpoints of one address type.
type endpointCounts struct {
	ready, notReady, servingTerminating int
}

func (c *endpointCounts) add(e kube.Endpoint) {
	switch {
	case e.Ready:
		c.ready++
	case e.Serving && e.Terminating:
		c.notReady++
		c.servingTerminating++
	default:
		c.notReady++
	}
}

// better tells whether c should replace best as a Service's counts: more
// ready endpoints, then more endpoints.
func (c endpointCounts) better(best endpointCounts) bool {
	return c.ready > best.ready || (c.ready == best.ready && c.notReady > best.notReady)
}

// countEndpoints aggregates the slices of one Service. Within an address
// type, an address listed in several slices (as it may be while the
// EndpointSlice controller moves it) counts once, ready when any of its
// entries is; the slices of one address type are merged by address only
// when there are several. Of the address types, the one with the most ready
// endpoints is returned: a dual-stack Service lists each pod once per IP
// family, and either family's endpoints serve it.
func countEndpoints(slices []*kube.EndpointSlice) endpointCounts {
	var best endpointCounts
	for i, s := range slices {
		seen := false
		for _, o := range slices[:i] {
			seen = seen || o.AddressType == s.AddressType
		}
		if seen {
			continue // counted with the first slice of its type
		}
		var c endpointCounts
		var more []*kube.EndpointSlice
		for _, o := range slices[i+1:] {
			if o.AddressType == s.AddressType {
				more = append(more, o)
			}
		}
		if len(more) == 0 {
			for _, e := range s.Endpoints {
				c.add(e)
			}
		} else {
			byAddr := make(map[string]kube.Endpoint, len(s.Endpoints))
			for _, o := range append([]*kube.EndpointSlice{s}, more...) {
				for _, e := range o.Endpoints {
					if prev, ok := byAddr[e.Address]; ok {
						e.Ready = e.Ready || prev.Ready
						e.Serving = e.Serving || prev.Serving
						e.Terminating = e.Terminating && prev.Terminating
					}
					byAddr[e.Address] = e
				}
			}
			for _, e := range byAddr {
				c.add(e)
			}
		}
		if i == 0 || c.better(best) {
			best = c
		}
	}
	return best
}

// ReadyEndpoints is the number of ready endpoints of a Service with these
// slices (all of one Service), counted as upgradeguard_service_endpoints
// {ready="true"} counts them: each address once, the address type with the
// most. The roll's downtime sampler counts with it.
func ReadyEndpoints(slices []*kube.EndpointSlice) int { return countEndpoints(slices).ready }

type serviceKey struct{ namespace, name string }

// updateServices sends the endpoint counts of every Service that has an
// EndpointSlice. The EndpointSlice controller keeps an empty slice for a
// Service with a selector and no pods, so such a Service has series of 0.
// Slices without the kubernetes.io/service-name label belong to no Service
// and are ignored. Readiness follows the slice's conditions, which the
// EndpointSlice controller derives from the pods (ready: the pod is Ready and
// not terminating, or the Service publishes not-ready addresses); the
// fallback to serving terminating endpoints is kube-proxy's
// (pkg/proxy/topology.go, CategorizeEndpoints).
func updateServices(objs []any, ch chan<- prometheus.Metric) {
	services := map[serviceKey][]*kube.EndpointSlice{}
	for _, obj := range objs {
		slice, ok := obj.(*kube.EndpointSlice)
		if !ok || slice.Service == "" {
			continue
		}
		k := serviceKey{slice.Namespace, slice.Service}
		services[k] = append(services[k], slice)
	}
	for k, slices := range services {
		c := countEndpoints(slices)
		gauge(ch, serviceEndpointsDesc, float64(c.ready), k.namespace, k.name, "true")
		gauge(ch, serviceEndpointsDesc, float64(c.notReady), k.namespace, k.name, "false")
		gauge(ch, serviceServingTerminatingDesc, float64(c.servingTerminating), k.namespace, k.name)
	}
}
