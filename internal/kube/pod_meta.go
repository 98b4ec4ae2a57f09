package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Pod implements metav1.Object for the informer's store (its key function,
// meta.Accessor): the getters return what the Pod keeps and the zero value
// for the rest. The setters of what it does not keep do nothing; a stored Pod
// is never modified.
var _ metav1.Object = (*Pod)(nil)

// GetNamespace returns the pod's namespace.
func (p *Pod) GetNamespace() string { return p.Namespace }

// SetNamespace sets the pod's namespace.
func (p *Pod) SetNamespace(namespace string) { p.Namespace = namespace }

// GetName returns the pod's name.
func (p *Pod) GetName() string { return p.Name }

// SetName sets the pod's name.
func (p *Pod) SetName(name string) { p.Name = name }

// GetGenerateName returns "": not kept.
func (p *Pod) GetGenerateName() string { return "" }

// SetGenerateName does nothing: not kept.
func (p *Pod) SetGenerateName(string) {}

// GetUID returns "": not kept.
func (p *Pod) GetUID() types.UID { return "" }

// SetUID does nothing: not kept.
func (p *Pod) SetUID(types.UID) {}

// GetResourceVersion returns the pod's resource version.
func (p *Pod) GetResourceVersion() string { return p.ResourceVersion }

// SetResourceVersion sets the pod's resource version.
func (p *Pod) SetResourceVersion(version string) { p.ResourceVersion = version }

// GetGeneration returns 0: not kept.
func (p *Pod) GetGeneration() int64 { return 0 }

// SetGeneration does nothing: not kept.
func (p *Pod) SetGeneration(int64) {}

// GetSelfLink returns "": not kept.
func (p *Pod) GetSelfLink() string { return "" }

// SetSelfLink does nothing: not kept.
func (p *Pod) SetSelfLink(string) {}

// GetCreationTimestamp returns the zero time: not kept.
func (p *Pod) GetCreationTimestamp() metav1.Time { return metav1.Time{} }

// SetCreationTimestamp does nothing: not kept.
func (p *Pod) SetCreationTimestamp(metav1.Time) {}

// GetDeletionTimestamp returns the pod's deletion timestamp, nil when it is
// not being deleted.
func (p *Pod) GetDeletionTimestamp() *metav1.Time { return p.DeletionTimestamp }

// SetDeletionTimestamp sets the pod's deletion timestamp.
func (p *Pod) SetDeletionTimestamp(timestamp *metav1.Time) { p.DeletionTimestamp = timestamp }

// GetDeletionGracePeriodSeconds returns nil: not kept.
func (p *Pod) GetDeletionGracePeriodSeconds() *int64 { return nil }

// SetDeletionGracePeriodSeconds does nothing: not kept.
func (p *Pod) SetDeletionGracePeriodSeconds(*int64) {}

// GetLabels returns the pod's labels, shared with other pods: never modify
// the map.
func (p *Pod) GetLabels() map[string]string { return p.Labels }

// SetLabels sets the pod's labels.
func (p *Pod) SetLabels(labels map[string]string) { p.Labels = labels }

// GetAnnotations returns nil: not kept (StripPod keeps only whether the
// mirror-pod annotation is there, in Mirror).
func (p *Pod) GetAnnotations() map[string]string { return nil }

// SetAnnotations does nothing: not kept.
func (p *Pod) SetAnnotations(map[string]string) {}

// GetFinalizers returns nil: not kept.
func (p *Pod) GetFinalizers() []string { return nil }

// SetFinalizers does nothing: not kept.
func (p *Pod) SetFinalizers([]string) {}

// GetOwnerReferences returns nil: not kept (StripPod keeps the controller's
// kind, in ControllerKind).
func (p *Pod) GetOwnerReferences() []metav1.OwnerReference { return nil }

// SetOwnerReferences does nothing: not kept.
func (p *Pod) SetOwnerReferences([]metav1.OwnerReference) {}

// GetManagedFields returns nil: not kept.
func (p *Pod) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }

// SetManagedFields does nothing: not kept.
func (p *Pod) SetManagedFields([]metav1.ManagedFieldsEntry) {}
