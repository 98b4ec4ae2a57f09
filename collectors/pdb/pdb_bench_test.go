package pdb

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

const (
	benchNodes       = 5000
	benchPodsPerNode = 30
	benchNamespaces  = 300
	benchAppsPerNS   = 10
)

// BenchmarkScrape measures one full Update at 5,000 nodes, 150,000 pods and
// 3,000 PDBs. The stores are filled directly with stripped objects and the
// informers never run, so Update also reports them unsynced: its error is
// ignored, the computation is the same.
func BenchmarkScrape(b *testing.B) {
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	nodes, pods, pdbs := f.Nodes(), f.Pods(), f.PodDisruptionBudgets()
	add := func(inf *kube.Informer, strip cache.TransformFunc, obj any) {
		stripped, err := strip(obj)
		if err != nil {
			b.Fatal(err)
		}
		if err := inf.GetIndexer().Add(stripped); err != nil {
			b.Fatal(err)
		}
	}

	for n := range benchNodes {
		add(nodes, kube.StripNode(nil), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", n/250, n%250)}})
	}
	for ns := range benchNamespaces {
		for a := range benchAppsPerNS {
			add(pdbs, kube.StripPDB, benchPDB(ns, a))
		}
	}
	for i := range benchNodes * benchPodsPerNode {
		add(pods, kube.StripPod, benchPod(i))
	}

	c := New(nodes, pods, pdbs)
	ch := make(chan prometheus.Metric, 4096)
	counted := make(chan int)
	go func() {
		n := 0
		for range ch {
			n++
		}
		counted <- n
	}()

	b.ReportAllocs()
	scrapes := 0
	for b.Loop() {
		_ = c.Update(ch) // "not synced yet": the informers never ran
		scrapes++
	}
	close(ch)
	b.ReportMetric(float64(<-counted)/float64(scrapes), "metrics/op")
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

// benchPod i lives on node i/30, in namespace i%300, app (i/300)%10: 500
// pods per namespace, 50 per app, spread over the nodes.
func benchPod(i int) *corev1.Pod {
	n, ns, a := i/benchPodsPerNode, i%benchNamespaces, (i/benchNamespaces)%benchAppsPerNS
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
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", n/250, n%250)},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
	switch i % benchPodsPerNode {
	case 0: // one DaemonSet pod per node
		p.OwnerReferences[0].Kind = "DaemonSet"
	case 1:
		p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	case 2:
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	return p
}
