package preflight

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name, group, kubelet string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kops.k8s.io/instancegroup": group}},
		Status:     corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: kubelet}},
	}
}

func kubeProxy(image string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "kube-proxy", Image: image}}}}},
	}
}

func skewCluster(apiserver string, objs ...runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objs...)
	cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: apiserver}
	return cs
}

func TestCheckSkew(t *testing.T) {
	cs := skewCluster("v1.36.4",
		// At target 1.37 the oldest kubelet allowed is 1.34 (the edge);
		// 1.33 must be replaced first.
		node("old-1", "legacy", "v1.33.9"), node("old-2", "legacy", "v1.33.9"),
		node("edge", "batch", "v1.34.0"),
		node("cur-1", "web", "v1.36.4"), node("cur-2", "web", "v1.36.4-eks-1234"),
		kubeProxy("registry.k8s.io/kube-proxy:v1.36.4"))
	fs := CheckSkew(context.Background(), cs, Version{1, 37}, "")
	by := findingsBy(fs)
	legacy, ok := by["blocker node group legacy"]
	if !ok || legacy.NodeGroup != "legacy" || !strings.Contains(legacy.Message, "2 nodes on kubelet 1.33 (old-1, old-2)") || !strings.Contains(legacy.Message, "older than 1.34") {
		t.Errorf("legacy: %+v, %v\n%+v", legacy, ok, fs)
	}
	if _, ok := by["blocker node group batch"]; ok {
		t.Errorf("kubelet 1.34 is within the skew of 1.37: %+v", fs)
	}
	order := by["info upgrade order"].Message
	if order != "1) replace node groups legacy with kubelets of at least 1.34; 2) upgrade the control plane to 1.37; 3) upgrade the add-ons (kube-proxy, CoreDNS, VPC CNI) to versions for 1.37; 4) roll node groups batch, web to kubelet 1.37" {
		t.Errorf("order: %q", order)
	}
	if f := by["info kube-proxy"]; !strings.Contains(f.Message, "kube-proxy 1.36") {
		t.Errorf("kube-proxy: %+v", fs)
	}
	if r := (Report{Findings: fs}); r.ExitCode() != ExitBlockers {
		t.Errorf("exit %d", r.ExitCode())
	}
}

func TestCheckSkewControlPlane(t *testing.T) {
	for _, c := range []struct {
		apiserver string
		target    Version
		sev       Severity
		want      string
	}{
		{"v1.35.1", Version{1, 37}, Blocker, "upgrade to 1.36 first"},
		{"v1.37.2", Version{1, 36}, Blocker, "not downgraded"},
		{"v1.37.2", Version{1, 37}, Info, "only the nodes"},
	} {
		fs := CheckSkew(context.Background(), skewCluster(c.apiserver), c.target, "")
		f, ok := findingsBy(fs)[string(c.sev)+" control plane"]
		if !ok || !strings.Contains(f.Message, c.want) {
			t.Errorf("%s -> %s: %+v", c.apiserver, c.target, fs)
		}
	}
	// A kubelet newer than the API server, kube-proxy too old, an image
	// without a version.
	fs := CheckSkew(context.Background(), skewCluster("v1.36.0", node("n", "g", "v1.37.0"), kubeProxy("kube-proxy:v1.32.0-minimal-eksbuild.1")), Version{1, 37}, "")
	by := findingsBy(fs)
	if _, ok := by["blocker node group g"]; !ok {
		t.Errorf("newer kubelet: %+v", fs)
	}
	if f := by["blocker kube-proxy"]; !strings.Contains(f.Message, "older than 1.34") {
		t.Errorf("old kube-proxy: %+v", fs)
	}
	// The control plane already at the target: an old kubelet is out of
	// the policy now.
	fs = CheckSkew(context.Background(), skewCluster("v1.37.2", node("old", "legacy", "v1.33.5")), Version{1, 37}, "")
	if f := findingsBy(fs)["blocker node group legacy"]; !strings.Contains(f.Message, "outside the skew policy already") {
		t.Errorf("control plane at the target: %+v", fs)
	}
	fs = CheckSkew(context.Background(), skewCluster("v1.36.0", kubeProxy("kube-proxy@sha256:abc")), Version{1, 37}, "")
	if _, ok := findingsBy(fs)["unknown kube-proxy"]; !ok {
		t.Errorf("digest-only image: %+v", fs)
	}
}
