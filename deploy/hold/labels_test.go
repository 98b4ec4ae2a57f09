package hold_test

import (
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// TestDeploymentCarriesTheGateHoldLabels: the Deployment
// and its pods carry the labels by which the exporter marks them as gate
// hold's own (kube.IsGateHold), so that the gate sets their unreadiness
// (by design while it does not say GO) aside; its selector selects them.
func TestDeploymentCarriesTheGateHoldLabels(t *testing.T) {
	b, err := os.ReadFile("deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := obj.(*appsv1.Deployment)
	if !kube.IsGateHold(d.Labels) || !kube.IsGateHold(d.Spec.Template.Labels) {
		t.Errorf("labels %v, pod template labels %v: want %s=%s and %s=%s on both", d.Labels, d.Spec.Template.Labels,
			kube.LabelAppName, kube.GateHoldAppName, kube.LabelAppComponent, kube.GateHoldComponent)
	}
	if !kube.SelectsOnlyGateHold(d.Spec.Selector) {
		t.Errorf("selector %v does not select the hold's pods alone", d.Spec.Selector)
	}
}
