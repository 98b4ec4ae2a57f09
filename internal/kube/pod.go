package kube

import (
	"encoding/binary"
	"maps"
	"runtime"
	"slices"
	"sync"
	"unique"
	"weak"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod is what the pod informer stores of a pod: StripPod turns every
// *corev1.Pod into one. It keeps exactly what the collectors read.
//
// Why not a stripped *corev1.Pod: at 150,000 pods the pod store is most of
// the exporter's memory. An empty corev1.Pod struct alone is 1,240 bytes
// (1,280 allocated); each pod also came with its own labels map (~350 bytes
// with five labels) although all the pods of a ReplicaSet have the same
// labels, an owner reference, a condition, and its own copies of the
// namespace and node name. A Pod is 128 bytes allocated. It shares its labels
// map, namespace and controller kind with every stored pod of the same
// namespace, controller kind and labels (podGroups), and its node name with
// every pod of the node (unique.Handle).
//
// Measured with kubetest.Production (5,000 nodes, 150,000 pods, 3,000 PDBs;
// heap in use by all the stores): about 490 MiB with stripped *corev1.Pod;
// 400 MiB with their label maps interned; 350 MiB when also interning their
// strings with unique.Make; 150 MiB with this type but a labels map per pod;
// 100 MiB with an embedded metav1.ObjectMeta (288 bytes a Pod, most of them
// the ObjectMeta's fields never kept). Without it, at 2,000 nodes and 40,000
// pods, every store together holds 19.2 MiB instead of 25.3 MiB, 396 bytes
// per pod instead of 556 (TestPodStoreHeap).
//
// Pod implements metav1.Object (pod_meta.go), so meta.Accessor, and so the
// informer's key function and resourceVersion bookkeeping, work as on any
// object; the metadata it does not keep reads as empty.
//
// A Pod is shared by every reader of the cache and must never be modified.
// Its Labels map in particular is shared by many pods.
type Pod struct {
	// Meta holds the name, namespace and resourceVersion; the namespace is
	// the group's.
	Meta
	// DeletionTimestamp and Labels are the pod's metadata fields of the
	// same names.
	DeletionTimestamp *metav1.Time
	Labels            map[string]string

	// Phase is status.phase.
	Phase corev1.PodPhase
	// ControllerKind is the kind of the controlling owner reference, when
	// HasController.
	ControllerKind string

	node unique.Handle[string] // spec.nodeName; the zero Handle for ""
	// group keeps the group, whose namespace, controller kind and labels
	// the fields above share, alive in the interning cache.
	group *podGroup

	// HasController tells whether the pod has a controlling owner reference.
	HasController bool
	// Ready tells whether the pod's Ready condition is True.
	Ready bool
	// HasEmptyDir tells whether the pod has an emptyDir volume.
	HasEmptyDir bool
	// Mirror tells whether the pod carries the mirror-pod annotation, i.e. is
	// the API server's copy of a static pod.
	Mirror bool
	// HasPodIP tells whether status.podIP is set.
	HasPodIP bool
	// HostNetwork is spec.hostNetwork: the pod uses its node's address, not
	// one of the VPC CNI's.
	HostNetwork bool
}

// NodeName is spec.nodeName, "" for a pod not scheduled yet.
func (p *Pod) NodeName() string {
	if p.node == (unique.Handle[string]{}) {
		return ""
	}
	return p.node.Value()
}

// podGroup is what the pods of one controller revision have in common: the
// namespace, the controller kind and the labels. A stored Pod points to its
// group, and the interning cache only weakly, so a group lives as long as one
// stored pod has it.
type podGroup struct {
	namespace      string
	controllerKind string
	labels         map[string]string // never modified once in the cache
}

// groupCache interns podGroups. Entries are weak pointers, removed by a
// cleanup once no stored pod refers to their group, so the cache does not
// grow as ReplicaSets come and go. It is safe for concurrent use; the
// transform calls it from one informer goroutine.
type groupCache struct {
	mu     sync.Mutex
	groups map[string]weak.Pointer[podGroup]
	// Scratch space for building a key, reused under mu.
	keys []string
	buf  []byte
}

// podGroups is the cache of the pod transform. It is global because the
// transform is a plain function; at most one pod informer runs per process,
// and two would only share their groups.
var podGroups = &groupCache{groups: map[string]weak.Pointer[podGroup]{}}

// get returns the group of namespace, controller kind and labels, creating
// it with a copy of labels when the cache has none. The returned group's
// labels map is shared: callers must not modify it.
func (c *groupCache) get(namespace, controllerKind string, labels map[string]string) *podGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The key encodes each string with its length, so that distinct groups
	// never have the same key, and the labels sorted by key.
	c.keys = c.keys[:0]
	for k := range labels {
		c.keys = append(c.keys, k)
	}
	slices.Sort(c.keys)
	b := appendString(c.buf[:0], namespace)
	b = appendString(b, controllerKind)
	for _, k := range c.keys {
		b = appendString(b, k)
		b = appendString(b, labels[k])
	}
	c.buf = b
	if wp, ok := c.groups[string(b)]; ok { // no allocation for the lookup
		if g := wp.Value(); g != nil {
			return g
		}
	}
	g := &podGroup{namespace: namespace, controllerKind: controllerKind}
	if len(labels) > 0 {
		g.labels = maps.Clone(labels)
	}
	key := string(b)
	c.groups[key] = weak.Make(g)
	runtime.AddCleanup(g, c.release, key)
	return g
}

// release removes key from the cache once its group has been collected,
// unless the key was given a new, live group meanwhile.
func (c *groupCache) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wp, ok := c.groups[key]; ok && wp.Value() == nil {
		delete(c.groups, key)
	}
}

// len returns the number of entries, for tests.
func (c *groupCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.groups)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// internPhase returns phase as one of the corev1 constants where it is one,
// rather than the decoder's copy of the string.
func internPhase(phase corev1.PodPhase) corev1.PodPhase {
	switch phase {
	case corev1.PodPending:
		return corev1.PodPending
	case corev1.PodRunning:
		return corev1.PodRunning
	case corev1.PodSucceeded:
		return corev1.PodSucceeded
	case corev1.PodFailed:
		return corev1.PodFailed
	case corev1.PodUnknown:
		return corev1.PodUnknown
	}
	return phase
}
