package kube

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Lease is what the node Lease informer stores of a kubelet's heartbeat
// Lease (StripLease): the renewal time and the duration the nodes collector
// reads. A coordinationv1.Lease is 320 bytes before its strings and the
// renew time and duration it points to; a Lease is 80 (TestNodeSize).
//
// A stored Lease is shared by every reader of the cache and must never be
// modified.
type Lease struct {
	// Meta holds the name (the node's), namespace (kube-node-lease) and
	// resourceVersion.
	Meta
	// RenewTime is spec.renewTime, the zero time where unset.
	RenewTime metav1.MicroTime
	// DurationSeconds is spec.leaseDurationSeconds in seconds, 0 where
	// unset: a set one is at least 1, as the API server's validation
	// requires (ValidateLeaseSpec, k8s.io/kubernetes
	// pkg/apis/coordination/validation/validation.go).
	DurationSeconds int32
}

// StripLease is the node Lease informer's transform: it turns a
// *coordinationv1.Lease into a *Lease. Other objects (a *Lease already
// stripped, cache.DeletedFinalStateUnknown) pass through unchanged.
func StripLease(obj any) (any, error) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return obj, nil
	}
	out := &Lease{Meta: metaOf(&l.ObjectMeta)}
	if l.Spec.RenewTime != nil {
		out.RenewTime = *l.Spec.RenewTime
	}
	if l.Spec.LeaseDurationSeconds != nil {
		out.DurationSeconds = *l.Spec.LeaseDurationSeconds
	}
	return out, nil
}

// DeepCopyObject returns a copy of l.
func (l *Lease) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	c := *l
	return &c
}

var _ runtime.Object = (*Lease)(nil)
