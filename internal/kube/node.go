package kube

import (
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Node is what the node informer stores of a node (StripNode): what the
// nodes collector renders and collectors/cni reads (the labels of its
// instance type, the provider ID). The pdb collector reads only the store's
// keys.
//
// Why not a stripped *corev1.Node: a corev1.Node is 784 bytes (896
// allocated), with its zero spec and status inline, and the Ready condition
// came in a slice of its own. A Node is 176 allocated (TestNodeSize).
// Measured at 2,000 nodes with their Leases (TestNodeStoreHeap), the node
// and Lease stores held 1,693 bytes per node with stripped API objects and
// hold 581 with Node and Lease.
//
// A stored Node is shared by every reader of the cache and must never be
// modified; its Labels map in particular is shared by the nodes with the
// same kept labels.
type Node struct {
	// Meta holds the name and resourceVersion; the namespace is "".
	Meta
	// CreationTimestamp is metadata.creationTimestamp.
	CreationTimestamp metav1.Time
	// DeletionTimestamp is metadata.deletionTimestamp, nil unless the node
	// is being deleted.
	DeletionTimestamp *metav1.Time
	// Labels holds the labels StripNode keeps, nil when the node has none
	// of them.
	Labels map[string]string
	// ProviderID is spec.providerID ("aws:///<zone>/<instance ID>" on AWS).
	ProviderID string
	// KubeletVersion is status.nodeInfo.kubeletVersion.
	KubeletVersion string
	// Taints are spec.taints, with their key, value and effect (timeAdded
	// is dropped); nil when there are none.
	Taints []corev1.Taint
	// Ready is the status of the Ready condition: True, False, or Unknown,
	// also when the node has no Ready condition yet.
	Ready corev1.ConditionStatus
	// Unschedulable is spec.unschedulable: the node is cordoned.
	Unschedulable bool
}

// WellKnownNodeLabels are the node labels the node informer always keeps,
// whatever its Options: the zone, the instance type (stable and beta keys)
// and the node group of kops and EKS, which the nodes collector renders and
// collectors/cni reads (the instance type, for a node's IP capacity). A
// caller that built its informers without naming them once lost the instance
// type, and with it every node's capacity (preflight's capacity check).
var WellKnownNodeLabels = []string{LabelZone, LabelZoneLegacy,
	LabelInstanceType, LabelInstanceTypeLegacy, LabelKopsInstanceGroup, LabelEKSNodegroup}

// keptNodeLabels returns WellKnownNodeLabels and extra, sorted, each once.
func keptNodeLabels(extra []string) []string {
	keep := slices.Concat(WellKnownNodeLabels, extra)
	slices.Sort(keep)
	return slices.Compact(keep)
}

// StripNode returns the node informer's transform, which turns a
// *corev1.Node into a *Node keeping the labels in keep. Other objects (a
// *Node already stripped, cache.DeletedFinalStateUnknown) pass through
// unchanged.
//
// The kept labels (zone, instance type, node group) are the same on every
// node of a group, so the nodes with the same kept labels share one map (of
// about 340 bytes), from a cache per transform.
func StripNode(keep []string) cache.TransformFunc {
	sets := &labelSets{sets: map[string]map[string]string{}}
	return func(obj any) (any, error) {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return obj, nil
		}
		out := &Node{
			Meta:              metaOf(&n.ObjectMeta),
			CreationTimestamp: n.CreationTimestamp,
			DeletionTimestamp: n.DeletionTimestamp,
			Labels:            sets.get(keep, n.Labels),
			ProviderID:        n.Spec.ProviderID,
			KubeletVersion:    n.Status.NodeInfo.KubeletVersion,
			Ready:             corev1.ConditionUnknown,
			Unschedulable:     n.Spec.Unschedulable,
		}
		if len(n.Spec.Taints) > 0 {
			out.Taints = make([]corev1.Taint, len(n.Spec.Taints))
			for i, t := range n.Spec.Taints {
				out.Taints[i] = corev1.Taint{Key: t.Key, Value: t.Value, Effect: internString(t.Effect,
					corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute)}
			}
		}
		for i := range n.Status.Conditions {
			if c := &n.Status.Conditions[i]; c.Type == corev1.NodeReady {
				out.Ready = internString(c.Status, corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown)
				break
			}
		}
		return out, nil
	}
}

// maxLabelSets bounds a labelSets cache: past it the cache starts again
// empty, which only stops the nodes stripped later from sharing the maps of
// those stripped before. A cluster has a few label sets per node group.
const maxLabelSets = 4096

// labelSets interns the node label maps of one StripNode transform. It is
// safe for concurrent use.
type labelSets struct {
	mu   sync.Mutex
	sets map[string]map[string]string // by the kept labels, encoded
	buf  []byte                       // scratch for the key, under mu
}

// get returns the shared map of the labels in keep that labels has, nil when
// it has none of them.
func (c *labelSets) get(keep []string, labels map[string]string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	// keep is in a fixed order, so equal kept labels give equal keys; each
	// string is encoded with its length, so distinct sets never do.
	b := c.buf[:0]
	for _, k := range keep {
		if v, ok := labels[k]; ok {
			b = appendString(appendString(b, k), v)
		}
	}
	c.buf = b
	if len(b) == 0 {
		return nil
	}
	if m, ok := c.sets[string(b)]; ok { // no allocation for the lookup
		return m
	}
	m := make(map[string]string, len(keep))
	for _, k := range keep {
		if v, ok := labels[k]; ok {
			m[k] = v
		}
	}
	if len(c.sets) >= maxLabelSets {
		clear(c.sets)
	}
	c.sets[string(b)] = m
	return m
}

// GetCreationTimestamp returns the node's creation timestamp.
func (n *Node) GetCreationTimestamp() metav1.Time { return n.CreationTimestamp }

// SetCreationTimestamp sets the node's creation timestamp.
func (n *Node) SetCreationTimestamp(timestamp metav1.Time) { n.CreationTimestamp = timestamp }

// GetDeletionTimestamp returns the node's deletion timestamp, nil when it is
// not being deleted.
func (n *Node) GetDeletionTimestamp() *metav1.Time { return n.DeletionTimestamp }

// SetDeletionTimestamp sets the node's deletion timestamp.
func (n *Node) SetDeletionTimestamp(timestamp *metav1.Time) { n.DeletionTimestamp = timestamp }

// GetLabels returns the kept labels, shared with other nodes: never modify
// the map.
func (n *Node) GetLabels() map[string]string { return n.Labels }

// SetLabels sets the node's labels.
func (n *Node) SetLabels(labels map[string]string) { n.Labels = labels }

// DeepCopyObject returns a copy of n that shares nothing with it, its
// labels map included.
func (n *Node) DeepCopyObject() runtime.Object {
	if n == nil {
		return nil
	}
	c := *n
	if n.DeletionTimestamp != nil {
		t := *n.DeletionTimestamp
		c.DeletionTimestamp = &t
	}
	c.Labels = maps.Clone(n.Labels)
	c.Taints = slices.Clone(n.Taints)
	for i := range c.Taints {
		if t := c.Taints[i].TimeAdded; t != nil {
			copied := *t
			c.Taints[i].TimeAdded = &copied
		}
	}
	return &c
}

var (
	_ metav1.Object  = (*Node)(nil)
	_ runtime.Object = (*Node)(nil)
)
