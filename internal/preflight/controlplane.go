package preflight

import (
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// controlPlaneClient is a component of the control plane that requests an
// API version itself, with the upstream code that does.
type controlPlaneClient struct {
	Component string // "kube-apiserver"
	What      string // what in it requests the resource
	Source    string // the upstream file (k8s.io/kubernetes)
}

// controlPlaneRequests are the group/version/resources that a control plane
// with nothing else running requests of itself, as of Kubernetes 1.37: no
// user can stop these requests, so a finding about them must not ask the
// user to. apiserver_request_total has no label naming the client (its
// labels are verb, dry_run, group, version, resource, subresource, scope,
// component and code: k8s.io/apiserver pkg/endpoints/metrics/metrics.go), so
// the metrics cannot tell these requests from a user's client of the same
// version; the audit log's userAgent can.
var controlPlaneRequests = map[schema.GroupVersionResource][]controlPlaneClient{
	// v1 Endpoints is deprecated since 1.33 (KEP-4974) with no removal
	// announced, but the control plane keeps it for older clients.
	{Version: "v1", Resource: "endpoints"}: {
		{"kube-apiserver", "the endpoint reconciler keeping default/kubernetes", "pkg/controlplane/reconcilers/endpointsadapter.go"},
		{"kube-controller-manager", "the endpoints controller", "pkg/controller/endpoint/endpoints_controller.go"},
		{"kube-controller-manager", "the EndpointSlice mirroring controller", "pkg/controller/endpointslicemirroring/endpointslicemirroring_controller.go"},
	},
}

// controlPlaneNote says who in the control plane requests gvr itself and
// how the user can tell their own clients apart; "" when no control plane
// component is known to request it.
func controlPlaneNote(gvr schema.GroupVersionResource) string {
	cs := controlPlaneRequests[gvr]
	if len(cs) == 0 {
		return ""
	}
	who := make([]string, len(cs))
	for i, c := range cs {
		who[i] = c.Component + " (" + c.What + ", " + c.Source + ")"
	}
	return "the control plane requests it itself: " + strings.Join(who, "; ") +
		". apiserver_request_total names no client, so the metrics cannot tell those requests from your clients'; " +
		"requests from a userAgent other than kube-apiserver and kube-controller-manager in the audit log are yours to move"
}
