package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// Meta is the metadata a compact stored object keeps (Pod, Node, Lease,
// Deployment, StatefulSet, DaemonSet): the name and namespace, from which the informer's
// store makes its namespace/name key, and the resource version, which the
// informer's bookkeeping and event handlers compare. It is 48 bytes, where a
// metav1.ObjectMeta is 232 before any of its maps and slices.
//
// A type embedding Meta implements metav1.Object, so meta.Accessor and
// cache.MetaNamespaceKeyFunc work on it as on any API object: the getters
// of what Meta does not keep return the zero value and their setters do
// nothing. A type that keeps more (a timestamp, labels) overrides the
// methods of those fields.
type Meta struct {
	// Name, Namespace and ResourceVersion are metadata.name,
	// metadata.namespace ("" for a cluster-scoped object) and
	// metadata.resourceVersion.
	Name, Namespace, ResourceVersion string
}

// metaOf returns the Meta of an API object's metadata.
func metaOf(m *metav1.ObjectMeta) Meta {
	return Meta{Name: m.Name, Namespace: m.Namespace, ResourceVersion: m.ResourceVersion}
}

var _ metav1.Object = (*Meta)(nil)

// GetNamespace returns the namespace.
func (m *Meta) GetNamespace() string { return m.Namespace }

// SetNamespace sets the namespace.
func (m *Meta) SetNamespace(namespace string) { m.Namespace = namespace }

// GetName returns the name.
func (m *Meta) GetName() string { return m.Name }

// SetName sets the name.
func (m *Meta) SetName(name string) { m.Name = name }

// GetGenerateName returns "": not kept.
func (m *Meta) GetGenerateName() string { return "" }

// SetGenerateName does nothing: not kept.
func (m *Meta) SetGenerateName(string) {}

// GetUID returns "": not kept.
func (m *Meta) GetUID() types.UID { return "" }

// SetUID does nothing: not kept.
func (m *Meta) SetUID(types.UID) {}

// GetResourceVersion returns the resource version.
func (m *Meta) GetResourceVersion() string { return m.ResourceVersion }

// SetResourceVersion sets the resource version.
func (m *Meta) SetResourceVersion(version string) { m.ResourceVersion = version }

// GetGeneration returns 0: not kept.
func (m *Meta) GetGeneration() int64 { return 0 }

// SetGeneration does nothing: not kept.
func (m *Meta) SetGeneration(int64) {}

// GetSelfLink returns "": not kept.
func (m *Meta) GetSelfLink() string { return "" }

// SetSelfLink does nothing: not kept.
func (m *Meta) SetSelfLink(string) {}

// GetCreationTimestamp returns the zero time: not kept.
func (m *Meta) GetCreationTimestamp() metav1.Time { return metav1.Time{} }

// SetCreationTimestamp does nothing: not kept.
func (m *Meta) SetCreationTimestamp(metav1.Time) {}

// GetDeletionTimestamp returns nil: not kept.
func (m *Meta) GetDeletionTimestamp() *metav1.Time { return nil }

// SetDeletionTimestamp does nothing: not kept.
func (m *Meta) SetDeletionTimestamp(*metav1.Time) {}

// GetDeletionGracePeriodSeconds returns nil: not kept.
func (m *Meta) GetDeletionGracePeriodSeconds() *int64 { return nil }

// SetDeletionGracePeriodSeconds does nothing: not kept.
func (m *Meta) SetDeletionGracePeriodSeconds(*int64) {}

// GetLabels returns nil: not kept.
func (m *Meta) GetLabels() map[string]string { return nil }

// SetLabels does nothing: not kept.
func (m *Meta) SetLabels(map[string]string) {}

// GetAnnotations returns nil: not kept.
func (m *Meta) GetAnnotations() map[string]string { return nil }

// SetAnnotations does nothing: not kept.
func (m *Meta) SetAnnotations(map[string]string) {}

// GetFinalizers returns nil: not kept.
func (m *Meta) GetFinalizers() []string { return nil }

// SetFinalizers does nothing: not kept.
func (m *Meta) SetFinalizers([]string) {}

// GetOwnerReferences returns nil: not kept.
func (m *Meta) GetOwnerReferences() []metav1.OwnerReference { return nil }

// SetOwnerReferences does nothing: not kept.
func (m *Meta) SetOwnerReferences([]metav1.OwnerReference) {}

// GetManagedFields returns nil: not kept.
func (m *Meta) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }

// SetManagedFields does nothing: not kept.
func (m *Meta) SetManagedFields([]metav1.ManagedFieldsEntry) {}

// GetObjectKind returns schema.EmptyObjectKind: like the objects the
// informers decode (client-go drops their apiVersion and kind), a compact
// object has no type metadata. With DeepCopyObject, which each compact type
// defines for itself, it makes the type a runtime.Object.
func (m *Meta) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
