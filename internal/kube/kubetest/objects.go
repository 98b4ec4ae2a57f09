package kubetest

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

// Objects returns the cluster Fill adds (nodes, their Leases, PDBs and
// pods) plus one Deployment per app, as the API server holds them, for a
// fake clientset whose informers then run for real: their event handlers
// see every object, as the exporter's do, which Fill's direct store adds
// skip.
func (s Scale) Objects() []runtime.Object {
	now := time.Now()
	objs := make([]runtime.Object, 0, 2*s.Nodes+s.Nodes*s.PodsPerNode+2*s.Namespaces*s.AppsPerNamespace)
	for n := range s.Nodes {
		objs = append(objs, node(n, now), lease(n, now))
	}
	pods := map[[2]int]int32{}
	for i := range s.Nodes * s.PodsPerNode {
		objs = append(objs, s.pod(i))
		pods[[2]int{i % s.Namespaces, (i / s.Namespaces) % s.AppsPerNamespace}]++
	}
	for ns := range s.Namespaces {
		for a := range s.AppsPerNamespace {
			objs = append(objs, benchPDB(ns, a),
				Deployment(fmt.Sprintf("team-%03d", ns), fmt.Sprintf("app-%d", a), pods[[2]int{ns, a}]))
		}
	}
	return objs
}
