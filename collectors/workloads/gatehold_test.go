package workloads

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// TestGateHoldMarks: the Deployment deploy/hold labels
// (on itself, or only on its pod template) and a Service carrying its
// labels, which the EndpointSlice controller copies to the slices, are
// marked as gate hold's own; the exporter's own Deployment and Service
// (component exporter) and other workloads are not.
func TestGateHoldMarks(t *testing.T) {
	hold := map[string]string{kube.LabelAppName: kube.GateHoldAppName, kube.LabelAppComponent: kube.GateHoldComponent}
	exporter := map[string]string{kube.LabelAppName: "upgradeguard", kube.LabelAppComponent: "exporter"}
	dep := func(name string, labels, template map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "upgradeguard", Name: name, Labels: labels},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2),
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: template}}},
		}
	}
	svc := func(name string, labels map[string]string) *discoveryv1.EndpointSlice {
		s := slice("upgradeguard", name+"-x", name, discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1", ready: no, serving: no})
		for k, v := range labels {
			s.Labels[k] = v
		}
		return s
	}
	c := start(t, fake.NewClientset(
		dep("upgradeguard-hold", hold, hold),
		dep("renamed-hold", nil, hold),
		dep("upgradeguard-exporter", exporter, exporter),
		svc("upgradeguard-hold", hold),
		svc("upgradeguard-exporter", exporter),
	))
	compare(t, c, `
# HELP upgradeguard_deployment_gate_hold `+deploymentGateHoldFamily.Help+`
# TYPE upgradeguard_deployment_gate_hold gauge
upgradeguard_deployment_gate_hold{deployment="renamed-hold",namespace="upgradeguard"} 1
upgradeguard_deployment_gate_hold{deployment="upgradeguard-hold",namespace="upgradeguard"} 1
# HELP upgradeguard_service_gate_hold `+serviceGateHoldFamily.Help+`
# TYPE upgradeguard_service_gate_hold gauge
upgradeguard_service_gate_hold{namespace="upgradeguard",service="upgradeguard-hold"} 1
`, "upgradeguard_deployment_gate_hold", "upgradeguard_service_gate_hold")
}
