package kube

import (
	"unique"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MirrorPodAnnotation marks the API server's copy of a static pod.
const MirrorPodAnnotation = corev1.MirrorPodAnnotationKey

// The transforms below keep only what a metric reads, so the caches stay
// small at 5,000 nodes and 150,000 pods. Anything else is dropped. Objects of
// other types (cache.DeletedFinalStateUnknown) pass through unchanged. The
// pod, node, node Lease and workload transforms go further and store compact
// types (pod.go, node.go, lease.go, workloads.go).

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
		Meta:              Meta{Name: p.Name, ResourceVersion: p.ResourceVersion},
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
