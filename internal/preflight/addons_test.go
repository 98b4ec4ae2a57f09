package preflight

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestCheckAddons(t *testing.T) {
	coredns := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "coredns", Image: "registry.k8s.io/coredns/coredns:v1.12.1"}}}}},
	}
	cs := fake.NewClientset(coredns, kubeProxy("registry.k8s.io/kube-proxy:v1.36.4"))
	fs := CheckAddons(context.Background(), cs, Version{1, 37}, nil)
	by := findingsBy(fs)
	// CoreDNS's compatibility is not guessed: unknown, naming the image.
	if f, ok := by["unknown CoreDNS"]; !ok || !strings.Contains(f.Source, "coredns:v1.12.1") || !strings.Contains(f.Message, "--addon-name coredns") {
		t.Errorf("CoreDNS: %+v, %v", f, ok)
	}
	if f, ok := by["info VPC CNI"]; !ok || !strings.Contains(f.Message, "not installed") {
		t.Errorf("VPC CNI: %+v, %v", f, ok)
	}
	if f, ok := by["info kube-proxy"]; !ok || !strings.Contains(f.Message, "v1.36.4") {
		t.Errorf("kube-proxy: %+v, %v", f, ok)
	}
}
