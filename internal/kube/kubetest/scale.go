// Package kubetest builds synthetic clusters of stripped objects in the
// informers' stores, for benchmarks at production scale without an API server.
package kubetest

import (
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// Scale describes a synthetic cluster. Pod i lives on node i/PodsPerNode, in
// namespace i%Namespaces and app (i/Namespaces)%AppsPerNamespace; each app has
// one PDB, every tenth of them with maxUnavailable 0. On every node one pod
// belongs to a DaemonSet, one has an emptyDir and one is not ready.
type Scale struct {
	Nodes, PodsPerNode, Namespaces, AppsPerNamespace int
}

// Production is the scale the exporter is built for: 5,000 nodes, 150,000
// pods and 3,000 PDBs.
var Production = Scale{Nodes: 5000, PodsPerNode: 30, Namespaces: 300, AppsPerNamespace: 10}

// Fill adds the cluster to the stores of the informers that f has been asked
// for so far (nodes, node Leases, pods, PDBs), through their transforms. The
// informers never run, so they stay unsynced.
func (s Scale) Fill(f *kube.Informers, nodeLabels []string) error {
	add := func(inf *kube.Informer, strip cache.TransformFunc, obj any) error {
		stripped, err := strip(obj)
		if err != nil {
			return err
		}
		return inf.GetIndexer().Add(stripped)
	}
	now := time.Now()
	for n := range s.Nodes {
		if err := add(f.Nodes(), kube.StripNode(nodeLabels), node(n, now)); err != nil {
			return err
		}
		if err := add(f.NodeLeases(), kube.StripLease, lease(n, now)); err != nil {
			return err
		}
	}
	for ns := range s.Namespaces {
		for a := range s.AppsPerNamespace {
			if err := add(f.PodDisruptionBudgets(), kube.StripPDB, benchPDB(ns, a)); err != nil {
				return err
			}
		}
	}
	for i := range s.Nodes * s.PodsPerNode {
		if err := add(f.Pods(), kube.StripPod, s.pod(i)); err != nil {
			return err
		}
	}
	return nil
}

func nodeName(n int) string { return fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", n/250, n%250) }

func node(n int, now time.Time) *corev1.Node {
	zone := []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}[n%3]
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: nodeName(n), ResourceVersion: "1", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour)),
			Labels: map[string]string{
				corev1.LabelTopologyZone:       zone,
				corev1.LabelInstanceTypeStable: "m5.xlarge",
				"kops.k8s.io/instancegroup":    fmt.Sprintf("nodes-%d", n%4),
				corev1.LabelHostname:           nodeName(n),
			},
		},
		Spec: corev1.NodeSpec{ProviderID: fmt.Sprintf("aws:///%s/i-%017x", zone, n)},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
		},
	}
}

func lease(n int, now time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName(n), Namespace: kube.NodeLeaseNamespace, ResourceVersion: "1"},
		Spec: coordinationv1.LeaseSpec{
			RenewTime:            &metav1.MicroTime{Time: now.Add(-time.Duration(n%10) * time.Second)},
			LeaseDurationSeconds: ptr.To[int32](40),
		},
	}
}

func benchPDB(ns, a int) *policyv1.PodDisruptionBudget {
	namespace, name := fmt.Sprintf("team-%03d", ns), fmt.Sprintf("app-%d", a)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{
		"app.kubernetes.io/name":     name,
		"app.kubernetes.io/instance": name + "-" + namespace,
	}}
	if a%5 == 0 {
		sel = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app.kubernetes.io/name", Operator: metav1.LabelSelectorOpIn, Values: []string{name}},
			{Key: "app.kubernetes.io/component", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"migration"}},
		}}
	}
	p := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 1, ResourceVersion: "1",
			UID: types.UID(fmt.Sprintf("pdb-%d-%d", ns, a))},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: ptr.To(intstr.FromInt32(1))},
		Status: policyv1.PodDisruptionBudgetStatus{
			ObservedGeneration: 1, DisruptionsAllowed: 1, ExpectedPods: 50, CurrentHealthy: 50, DesiredHealthy: 49,
		},
	}
	if a == 9 {
		p.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(0))
		p.Status.DisruptionsAllowed, p.Status.DesiredHealthy = 0, 50
	}
	return p
}

func (s Scale) pod(i int) *corev1.Pod {
	n, ns, a := i/s.PodsPerNode, i%s.Namespaces, (i/s.Namespaces)%s.AppsPerNamespace
	namespace, name := fmt.Sprintf("team-%03d", ns), fmt.Sprintf("app-%d", a)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: fmt.Sprintf("%s-7d9f8c6b5-%05d", name, i), UID: types.UID(fmt.Sprintf("pod-%d", i)),
			ResourceVersion: "1",
			Labels: map[string]string{
				"app.kubernetes.io/name":      name,
				"app.kubernetes.io/instance":  name + "-" + namespace,
				"app.kubernetes.io/component": "server",
				"app.kubernetes.io/part-of":   namespace,
				"pod-template-hash":           "7d9f8c6b5",
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-7d9f8c6b5", UID: types.UID(fmt.Sprintf("rs-%d-%d", ns, a)), Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{NodeName: nodeName(n)},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
	switch i % s.PodsPerNode {
	case 0: // one DaemonSet pod per node
		p.OwnerReferences[0].Kind = "DaemonSet"
	case 1:
		p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	case 2:
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	return p
}
