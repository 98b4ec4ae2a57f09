package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod implements metav1.Object for the informer's store (its key function,
// meta.Accessor) through its embedded Meta; it overrides the methods of the
// metadata it keeps beyond Meta's: the deletion timestamp and the labels. A
// stored Pod is never modified.
var _ metav1.Object = (*Pod)(nil)

// GetDeletionTimestamp returns the pod's deletion timestamp, nil when it is
// not being deleted.
func (p *Pod) GetDeletionTimestamp() *metav1.Time { return p.DeletionTimestamp }

// SetDeletionTimestamp sets the pod's deletion timestamp.
func (p *Pod) SetDeletionTimestamp(timestamp *metav1.Time) { p.DeletionTimestamp = timestamp }

// GetLabels returns the pod's labels, shared with other pods: never modify
// the map.
func (p *Pod) GetLabels() map[string]string { return p.Labels }

// SetLabels sets the pod's labels.
func (p *Pod) SetLabels(labels map[string]string) { p.Labels = labels }
