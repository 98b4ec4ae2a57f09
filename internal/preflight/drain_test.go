package preflight

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

func budget(name string, app string, expected int32, minAvailable, maxUnavailable *intstr.IntOrString) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			MinAvailable: minAvailable, MaxUnavailable: maxUnavailable},
		Status: policyv1.PodDisruptionBudgetStatus{ExpectedPods: expected},
	}
}

func pod(name, nodeName, app, controller string, emptyDir bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{NodeName: nodeName},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if controller != "" {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{Kind: controller, Name: app, Controller: &yes}}
	}
	if emptyDir {
		p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	return p
}

func TestCheckDrainBlockers(t *testing.T) {
	zero, one, all := intstr.FromInt32(0), intstr.FromInt32(1), intstr.FromString("100%")
	cs := fake.NewClientset(
		node("a", "web", "v1.36.0"), node("b", "batch", "v1.36.0"),
		budget("frozen", "db", 2, nil, &zero),  // maxUnavailable 0
		budget("all", "cache", 3, &all, nil),   // minAvailable 100%
		budget("single", "solo", 1, nil, &one), // one pod
		budget("api", "api", 2, &one, nil),     // fine alone...
		budget("api-too", "api", 2, nil, &one), // ...but two PDBs select the api pods
		pod("db-0", "a", "db", "StatefulSet", false),
		pod("api-1", "a", "api", "ReplicaSet", false),
		pod("debug", "b", "tools", "", false),
		pod("scratch", "b", "tools", "ReplicaSet", true),
		pod("agent", "b", "tools", "DaemonSet", true), // left alone by drains
		pod("done", "b", "tools", "", false),
	)
	done, _ := cs.CoreV1().Pods("shop").Get(context.Background(), "done", metav1.GetOptions{})
	done.Status.Phase = corev1.PodSucceeded
	if _, err := cs.CoreV1().Pods("shop").Update(context.Background(), done, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	fs := CheckDrainBlockers(context.Background(), cs, "")
	by := findingsBy(fs)
	for key, want := range map[string]string{
		"blocker PDB shop/frozen":  "maxUnavailable 0",
		"blocker PDB shop/all":     "minAvailable 100%",
		"warning PDB shop/single":  "single-replica",
		"blocker pod shop/api-1":   "matched by 2 PDBs ([api api-too])",
		"warning node group batch": "", // two findings; checked below
	} {
		f, ok := by[key]
		if !ok || !strings.Contains(f.Message, want) {
			t.Errorf("%s: %+v, %v", key, f, ok)
		}
	}
	var unmanaged, local bool
	for _, f := range fs {
		if f.Object == "node group batch" {
			unmanaged = unmanaged || strings.Contains(f.Message, "1 pods without a controller (shop/debug)")
			local = local || strings.Contains(f.Message, "1 pods with emptyDir volumes (shop/scratch)")
		}
		if strings.Contains(f.Message, "agent") || strings.Contains(f.Message, "shop/done") || f.Object == "PDB shop/api" {
			t.Errorf("unexpected finding %+v", f)
		}
	}
	if !unmanaged || !local {
		t.Errorf("unmanaged %v, emptyDir %v: %+v", unmanaged, local, fs)
	}
	if by["blocker pod shop/api-1"].NodeGroup != "web" {
		t.Errorf("node group of api-1: %+v", by["blocker pod shop/api-1"])
	}
}
