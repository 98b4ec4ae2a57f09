package roll

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// snapshotWorkloads records the controllers of the pods a drain will evict
// and how many of their pods are ready in the cluster now. Gate hold's own
// pods (kube.IsGateHold) are not waited for: they are ready only while the
// gate says GO, which is the gate's business, not the replacement's.
func snapshotWorkloads(ctx context.Context, client kubernetes.Interface, evict []*corev1.Pod) ([]Workload, error) {
	byUID := map[string]*Workload{}
	namespaces := map[string]bool{}
	for _, p := range evict {
		ctrl := metav1.GetControllerOf(p)
		if ctrl == nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue // nothing recreates it, or nothing runs in it
		}
		if kube.IsGateHold(p.Labels) {
			continue // ready only on GO: waiting for it would hold the roll on itself
		}
		if _, ok := byUID[string(ctrl.UID)]; !ok {
			byUID[string(ctrl.UID)] = &Workload{Namespace: p.Namespace, Kind: ctrl.Kind, Name: ctrl.Name, UID: string(ctrl.UID)}
			namespaces[p.Namespace] = true
		}
	}
	for ns := range namespaces {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing the pods of namespace %s: %w", ns, err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			ctrl := metav1.GetControllerOf(p)
			if ctrl == nil {
				continue
			}
			if w := byUID[string(ctrl.UID)]; w != nil && podReady(p) {
				w.Ready++
			}
		}
	}
	out := make([]Workload, 0, len(byUID))
	for _, w := range byUID {
		out = append(out, *w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

// workloadsBack checks that every workload has as many ready pods, none on
// the old node, as before the drain; or as many as it has pods now, when it
// was scaled down meanwhile. It returns what is still missing.
func workloadsBack(ctx context.Context, client kubernetes.Interface, loads []Workload, oldNode string) ([]string, error) {
	byNS := map[string][]Workload{}
	for _, w := range loads {
		byNS[w.Namespace] = append(byNS[w.Namespace], w)
	}
	var missing []string
	for ns, ws := range byNS {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing the pods of namespace %s: %w", ns, err)
		}
		ready, existing := map[string]int{}, map[string]int{}
		why := map[string][]string{} // the pods not ready, and why
		for i := range list.Items {
			p := &list.Items[i]
			ctrl := metav1.GetControllerOf(p)
			if ctrl == nil || p.DeletionTimestamp != nil || p.Spec.NodeName == oldNode && oldNode != "" {
				continue
			}
			existing[string(ctrl.UID)]++
			if podReady(p) {
				ready[string(ctrl.UID)]++
			} else if w := notReadyWhy(p); w != "" {
				why[string(ctrl.UID)] = append(why[string(ctrl.UID)], w)
			}
		}
		for _, w := range ws {
			want := min(w.Ready, existing[w.UID])
			if ready[w.UID] < want {
				m := fmt.Sprintf("%s: %d of %d pods ready", w, ready[w.UID], want)
				if ps := why[w.UID]; len(ps) > 0 {
					sort.Strings(ps)
					m += " (" + strings.Join(ps[:min(len(ps), 3)], "; ") + ")"
				}
				missing = append(missing, m)
			}
		}
	}
	sort.Strings(missing)
	return missing, nil
}

func describeLoads(loads []Workload) string {
	if len(loads) == 0 {
		return "none"
	}
	var parts []string
	for _, w := range loads {
		parts = append(parts, fmt.Sprintf("%s (%d ready)", w, w.Ready))
	}
	return strings.Join(parts, ", ")
}

// notReadyWhy names a pod that is not ready and says why, as far as its
// status tells: the scheduler's message on a pod it could not place, or
// the first container waiting (with the kubelet's reason) or running not
// ready.
func notReadyWhy(p *corev1.Pod) string {
	name := "pod " + p.Namespace + "/" + p.Name
	if p.Spec.NodeName == "" {
		if msg := unschedulable(p); msg != "" {
			return name + " Pending: " + msg
		}
		return name + " Pending, not scheduled"
	}
	name += " on " + p.Spec.NodeName
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			return fmt.Sprintf("%s: container %s %s, %d restart(s)", name, cs.Name, cs.State.Waiting.Reason, cs.RestartCount)
		case cs.State.Running != nil && !cs.Ready:
			return fmt.Sprintf("%s: container %s running, not ready", name, cs.Name)
		}
	}
	return name + ": " + string(p.Status.Phase)
}
