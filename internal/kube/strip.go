package kube

import (
	"sync"
	"unique"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// MirrorPodAnnotation marks the API server's copy of a static pod.
const MirrorPodAnnotation = corev1.MirrorPodAnnotationKey

// The transforms below keep only what a metric reads, so the caches stay
// small at 5,000 nodes and 150,000 pods. Anything else is dropped. Objects of
// other types (cache.DeletedFinalStateUnknown) pass through unchanged. The pod
// transform goes further and stores a compact type, Pod (pod.go).

func stripMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
	}
}

// StripNode returns a transform that keeps a node's identity (with its
// creation and deletion timestamps), the labels in keep, its provider ID,
// unschedulable flag, taints (key, value, effect), Ready condition and
// kubelet version.
//
// The kept labels (zone, instance type, node group) are the same on every
// node of a group, so the nodes with the same kept labels share one map (of
// about 340 bytes): a stored node's Labels must never be modified.
func StripNode(keep []string) cache.TransformFunc {
	sets := &labelSets{sets: map[string]map[string]string{}}
	return func(obj any) (any, error) {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return obj, nil
		}
		out := &corev1.Node{ObjectMeta: stripMeta(n.ObjectMeta)}
		out.Labels = sets.get(keep, n.Labels)
		out.Spec.ProviderID = n.Spec.ProviderID
		out.Spec.Unschedulable = n.Spec.Unschedulable
		if len(n.Spec.Taints) > 0 {
			out.Spec.Taints = make([]corev1.Taint, len(n.Spec.Taints))
			for i, t := range n.Spec.Taints {
				out.Spec.Taints[i] = corev1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect}
			}
		}
		out.Status.NodeInfo.KubeletVersion = n.Status.NodeInfo.KubeletVersion
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				out.Status.Conditions = []corev1.NodeCondition{{
					Type: c.Type, Status: c.Status, Reason: c.Reason, LastTransitionTime: c.LastTransitionTime,
				}}
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

// StripPod is the pod informer's transform: it turns a *corev1.Pod into a
// *Pod holding what a drain decision needs - labels (for PDB selectors), the
// controller's kind, the mirror-pod annotation, whether there is an emptyDir
// volume, the node, the phase, the Ready condition, whether it has a pod IP
// and uses the host network (for collectors/cni), and the deletion
// timestamp. Other objects (a *Pod already stripped, as the reflector's
// watch-list path passes them to the store's Replace;
// cache.DeletedFinalStateUnknown) pass through unchanged.
func StripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &Pod{
		Name:              p.Name,
		ResourceVersion:   p.ResourceVersion,
		DeletionTimestamp: p.DeletionTimestamp,
		Phase:             internPhase(p.Status.Phase),
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		out.HasController = true
		out.ControllerKind = ref.Kind
	}
	out.group = podGroups.get(p.Namespace, out.ControllerKind, p.Labels)
	out.Namespace, out.ControllerKind, out.Labels = out.group.namespace, out.group.controllerKind, out.group.labels
	if p.Spec.NodeName != "" {
		out.node = unique.Make(p.Spec.NodeName)
	}
	_, out.Mirror = p.Annotations[MirrorPodAnnotation]
	out.HasPodIP = p.Status.PodIP != ""
	out.HostNetwork = p.Spec.HostNetwork
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].EmptyDir != nil {
			out.HasEmptyDir = true
			break
		}
	}
	for i := range p.Status.Conditions {
		if c := &p.Status.Conditions[i]; c.Type == corev1.PodReady {
			out.Ready = c.Status == corev1.ConditionTrue
			break
		}
	}
	return out, nil
}

// StripPDB keeps a PDB's spec and the status counters, dropping the
// disruptedPods map and conditions, which can be large.
func StripPDB(obj any) (any, error) {
	p, ok := obj.(*policyv1.PodDisruptionBudget)
	if !ok {
		return obj, nil
	}
	out := &policyv1.PodDisruptionBudget{ObjectMeta: stripMeta(p.ObjectMeta), Spec: p.Spec}
	out.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: p.Status.ObservedGeneration,
		DisruptionsAllowed: p.Status.DisruptionsAllowed,
		CurrentHealthy:     p.Status.CurrentHealthy,
		DesiredHealthy:     p.Status.DesiredHealthy,
		ExpectedPods:       p.Status.ExpectedPods,
	}
	return out, nil
}

// StripLease keeps a Lease's renew time and duration.
func StripLease(obj any) (any, error) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return obj, nil
	}
	out := &coordinationv1.Lease{ObjectMeta: stripMeta(l.ObjectMeta)}
	out.Spec.RenewTime = l.Spec.RenewTime
	out.Spec.LeaseDurationSeconds = l.Spec.LeaseDurationSeconds
	return out, nil
}
