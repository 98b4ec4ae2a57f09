package preflight

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/collectors/pdb"
)

// drainGroup counts, for one node group, the pods a drain would trouble.
type drainGroup struct {
	unmanaged, localStorage []string // namespace/name
}

// CheckDrainBlockers reads PodDisruptionBudgets, pods and nodes once and
// reports what will hold or hurt the drains of the roll, per node group:
//   - unsatisfiable PDBs (maxUnavailable 0, minAvailable 100% or at least
//     the expected pods: collectors/pdb's rule): every drain of their pods
//     waits for ever (blocker);
//   - pods matched by more than one PDB: the Eviction API refuses them
//     (k8s.io/kubernetes pkg/registry/core/pod/storage/eviction.go,
//     "This pod has more than one PodDisruptionBudget") (blocker);
//   - single-replica workloads under a PDB: their eviction is an outage,
//     or never allowed (warning);
//   - pods without a controller (a drain deletes them for good) and pods
//     with emptyDir volumes (a drain loses their data), per node group
//     (warning).
//
// Pods a drain leaves alone (DaemonSet and mirror pods, finished pods) are
// not counted, as kubectl drain does.
func CheckDrainBlockers(ctx context.Context, cs kubernetes.Interface, nodegroupLabel string) []Finding {
	var out []Finding
	unknown := func(what string, err error) []Finding {
		return append(out, Finding{Check: FamilyDrain, Severity: Unknown, Object: what, Source: "cluster", Message: fmt.Sprintf("listing %s: %v", what, err)})
	}
	pdbs, err := cs.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return unknown("PodDisruptionBudgets", err)
	}
	nodeList, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return unknown("nodes", err)
	}
	groupOf := map[string]string{}
	for i := range nodeList.Items {
		groupOf[nodeList.Items[i].Name] = NodegroupOf(&nodeList.Items[i], nodegroupLabel)
	}
	var pods []corev1.Pod
	cont := ""
	for {
		l, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
		if err != nil {
			return unknown("pods", err)
		}
		pods = append(pods, l.Items...)
		if cont = l.Continue; cont == "" {
			break
		}
	}
	type sel struct {
		p *policyv1.PodDisruptionBudget
		s labels.Selector
	}
	byNS := map[string][]sel{}
	for i := range pdbs.Items {
		p := &pdbs.Items[i]
		name := "PDB " + p.Namespace + "/" + p.Name
		s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			out = append(out, Finding{Check: FamilyDrain, Severity: Unknown, Object: name, Source: "cluster", Message: fmt.Sprintf("selector: %v", err)})
			continue
		}
		byNS[p.Namespace] = append(byNS[p.Namespace], sel{p, s})
		switch {
		case pdb.Unsatisfiable(p):
			out = append(out, Finding{Check: FamilyDrain, Severity: Blocker, Object: name, Source: "cluster",
				Message: fmt.Sprintf("can never allow an eviction (%s, %d expected pods): every drain of a node with its pods waits for ever", budgetSpec(p), p.Status.ExpectedPods)})
		case p.Status.ExpectedPods == 1:
			out = append(out, Finding{Check: FamilyDrain, Severity: Warning, Object: name, Source: "cluster",
				Message: fmt.Sprintf("guards a single-replica workload (%s): its eviction is an outage; run two replicas", budgetSpec(p))})
		}
	}
	groups := map[string]*drainGroup{}
	for i := range pods {
		pod := &pods[i]
		if pod.Spec.NodeName == "" || !drainEvicts(pod) {
			continue
		}
		var matched []string
		for _, s := range byNS[pod.Namespace] {
			// A nil selector is labels.Nothing(), an empty one labels.Everything():
			// the policy/v1 semantics, as collectors/pdb reads them.
			if s.s.Matches(labels.Set(pod.Labels)) {
				matched = append(matched, s.p.Name)
			}
		}
		g := groupOf[pod.Spec.NodeName]
		if len(matched) > 1 {
			sort.Strings(matched)
			out = append(out, Finding{Check: FamilyDrain, Severity: Blocker, Object: "pod " + pod.Namespace + "/" + pod.Name, Source: "node " + pod.Spec.NodeName, NodeGroup: g,
				Message: fmt.Sprintf("matched by %d PDBs (%v): the Eviction API refuses to evict it", len(matched), matched)})
		}
		dg := groups[g]
		if dg == nil {
			dg = &drainGroup{}
			groups[g] = dg
		}
		if metav1.GetControllerOf(pod) == nil {
			dg.unmanaged = append(dg.unmanaged, pod.Namespace+"/"+pod.Name)
		}
		for _, v := range pod.Spec.Volumes {
			if v.EmptyDir != nil {
				dg.localStorage = append(dg.localStorage, pod.Namespace+"/"+pod.Name)
				break
			}
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		dg := groups[g]
		obj := "node group " + g
		if g == "" {
			obj = "nodes without a node group label"
		}
		if len(dg.unmanaged) > 0 {
			sort.Strings(dg.unmanaged)
			out = append(out, Finding{Check: FamilyDrain, Severity: Warning, Object: obj, Source: "pods", NodeGroup: g,
				Message: fmt.Sprintf("%d pods without a controller (%s): a drain deletes them for good (roll --force-unmanaged)", len(dg.unmanaged), list(dg.unmanaged, 5))})
		}
		if len(dg.localStorage) > 0 {
			sort.Strings(dg.localStorage)
			out = append(out, Finding{Check: FamilyDrain, Severity: Warning, Object: obj, Source: "pods", NodeGroup: g,
				Message: fmt.Sprintf("%d pods with emptyDir volumes (%s): a drain loses their data (roll --force-local-storage)", len(dg.localStorage), list(dg.localStorage, 5))})
		}
	}
	out = append(out, Finding{Check: FamilyDrain, Severity: Info, Object: "drains", Source: "cluster",
		Message: fmt.Sprintf("read %d PDBs, %d pods, %d nodes", len(pdbs.Items), len(pods), len(nodeList.Items))})
	return out
}

// drainEvicts tells whether a drain evicts the pod: kubectl drain leaves
// DaemonSet pods and mirror pods alone, and finished pods hold nothing (the
// same rule as collectors/pdb's).
func drainEvicts(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return false
	}
	c := metav1.GetControllerOf(pod)
	return c == nil || c.Kind != "DaemonSet"
}

func budgetSpec(p *policyv1.PodDisruptionBudget) string {
	switch {
	case p.Spec.MaxUnavailable != nil:
		return "maxUnavailable " + p.Spec.MaxUnavailable.String()
	case p.Spec.MinAvailable != nil:
		return "minAvailable " + p.Spec.MinAvailable.String()
	}
	return "no minAvailable or maxUnavailable"
}
