package kube

import (
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// EndpointSliceServiceIndex is the EndpointSlice informer's index of slices
// by the Service they belong to, keyed by EndpointSlice.ServiceKey; a slice
// of no Service is not in it. collectors/workloads re-renders a Service from
// its slices through it when one of them changes.
const EndpointSliceServiceIndex = "service"

// EndpointSlice is what the EndpointSlice informer stores of a slice:
// StripEndpointSlice turns every *discoveryv1.EndpointSlice into one. It keeps
// the Service the slice belongs to, its address type and, per endpoint, the
// first address and the three conditions - what collectors/workloads counts.
//
// Why not a stripped *discoveryv1.EndpointSlice: an Endpoint there is about
// 150 bytes before its address, plus one allocation per condition pointer;
// a cluster has an endpoint per serving pod (150,000 at the scale the
// exporter is sized for). An Endpoint here is 24 bytes and its address.
//
// The embedded ObjectMeta makes meta.Accessor, and so the informer's key
// function, work as on any object. It holds only Name, Namespace and
// ResourceVersion. An EndpointSlice is shared by every reader of the cache
// and must never be modified.
type EndpointSlice struct {
	metav1.ObjectMeta

	// Service is the slice's kubernetes.io/service-name label: the Service
	// it belongs to, "" when it has none.
	Service string
	// AddressType is IPv4, IPv6 or FQDN; a dual-stack Service has slices of
	// both IP types listing the same pods.
	AddressType discoveryv1.AddressType
	// Endpoints are the slice's endpoints.
	Endpoints []Endpoint
	// GateHold is whether the slice's labels mark gate hold's own
	// (IsGateHold): the EndpointSlice controller copies a Service's labels
	// to its slices, so a Service labelled like the hold's Deployment has
	// hold slices, whose endpoints are ready only on GO.
	GateHold bool
}

// ServiceKey is the key of the Service the slice belongs to,
// "namespace/name" as cache.MetaNamespaceKeyFunc makes it for the Service;
// "" when the slice belongs to none.
func (s *EndpointSlice) ServiceKey() string {
	if s.Service == "" {
		return ""
	}
	return s.Namespace + "/" + s.Service
}

// endpointSliceServiceIndex is EndpointSliceServiceIndex's index function.
func endpointSliceServiceIndex(obj any) ([]string, error) {
	if s, ok := obj.(*EndpointSlice); ok && s.Service != "" {
		return []string{s.ServiceKey()}, nil
	}
	return nil, nil
}

// Endpoint is one endpoint of an EndpointSlice.
type Endpoint struct {
	// Address is the endpoint's first address; the API says the addresses
	// of an endpoint are fungible and that consumers may use the first only.
	Address string
	// Ready, Serving and Terminating are the endpoint's conditions, with the
	// API's meaning of a missing one: ready and serving when nil, not
	// terminating when nil (k8s.io/api discovery/v1 EndpointConditions).
	Ready, Serving, Terminating bool
}

// StripEndpointSlice is the EndpointSlice informer's transform: it turns a
// *discoveryv1.EndpointSlice into an *EndpointSlice. Other objects (an
// *EndpointSlice already stripped, cache.DeletedFinalStateUnknown) pass
// through unchanged.
func StripEndpointSlice(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:            s.Name,
			Namespace:       s.Namespace,
			ResourceVersion: s.ResourceVersion,
		},
		Service:     s.Labels[discoveryv1.LabelServiceName],
		AddressType: s.AddressType,
		GateHold:    IsGateHold(s.Labels),
	}
	if len(s.Endpoints) > 0 {
		out.Endpoints = make([]Endpoint, 0, len(s.Endpoints))
	}
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		if len(e.Addresses) == 0 {
			continue // invalid; the API server requires one
		}
		c := e.Conditions
		out.Endpoints = append(out.Endpoints, Endpoint{
			Address:     e.Addresses[0],
			Ready:       c.Ready == nil || *c.Ready,
			Serving:     c.Serving == nil || *c.Serving,
			Terminating: c.Terminating != nil && *c.Terminating,
		})
	}
	return out, nil
}

// EndpointSlices returns the shared EndpointSlice informer, indexed by
// Service (EndpointSliceServiceIndex). Its store holds *EndpointSlice, not
// *discoveryv1.EndpointSlice: see StripEndpointSlice.
func (f *Informers) EndpointSlices() *Informer {
	c := f.client.DiscoveryV1().EndpointSlices(metav1.NamespaceAll)
	return f.get("endpointslices", &discoveryv1.EndpointSlice{}, listWatch(c.List, c.Watch), StripEndpointSlice,
		cache.Indexers{EndpointSliceServiceIndex: endpointSliceServiceIndex})
}

// EndpointCounts are one Service's endpoints of one address type, as
// upgradeguard_service_endpoints and
// upgradeguard_service_serving_terminating_endpoints count them.
type EndpointCounts struct {
	Ready, NotReady, ServingTerminating int
}

func (c *EndpointCounts) add(e Endpoint) {
	switch {
	case e.Ready:
		c.Ready++
	case e.Serving && e.Terminating:
		c.NotReady++
		c.ServingTerminating++
	default:
		c.NotReady++
	}
}

// better tells whether c should replace best as a Service's counts: more
// ready endpoints, then more endpoints.
func (c EndpointCounts) better(best EndpointCounts) bool {
	return c.Ready > best.Ready || (c.Ready == best.Ready && c.NotReady > best.NotReady)
}

// CountEndpoints aggregates the slices of one Service: collectors/workloads
// renders upgradeguard_service_endpoints from it, and the roll's downtime
// sampler counts a Service's ready endpoints with it. Within an address
// type, an address listed in several slices (as it may be while the
// EndpointSlice controller moves it) counts once, ready when any of its
// entries is; the slices of one address type are merged by address only
// when there are several. Of the address types, the one with the most ready
// endpoints is returned: a dual-stack Service lists each pod once per IP
// family, and either family's endpoints serve it.
func CountEndpoints(slices []*EndpointSlice) EndpointCounts {
	var best EndpointCounts
	for i, s := range slices {
		seen := false
		for _, o := range slices[:i] {
			seen = seen || o.AddressType == s.AddressType
		}
		if seen {
			continue // counted with the first slice of its type
		}
		var c EndpointCounts
		var more []*EndpointSlice
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
			byAddr := make(map[string]Endpoint, len(s.Endpoints))
			for _, o := range append([]*EndpointSlice{s}, more...) {
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
