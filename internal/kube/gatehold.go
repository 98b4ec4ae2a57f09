package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The labels that mark `upgradeguard gate hold`'s own objects, in the
// app.kubernetes.io vocabulary: deploy/hold puts both on its Deployment and
// its pod template. The hold's pods are ready only while the gate says GO
// (that is how it holds kops' validation), so whatever describes them -
// their Deployment's available replicas, a Service or a
// PodDisruptionBudget selecting them, alerts on them - says what the gate
// said, not what users reach: the exporter marks them
// (upgradeguard_deployment_gate_hold, upgradeguard_service_gate_hold,
// upgradeguard_pdb_gate_hold) and the gate sets them aside, or the hold would
// hold itself.
const (
	// LabelAppName is the app.kubernetes.io/name label; GateHoldAppName its
	// value on the hold's objects.
	LabelAppName    = "app.kubernetes.io/name"
	GateHoldAppName = "upgradeguard"
	// LabelAppComponent is the app.kubernetes.io/component label;
	// GateHoldComponent its value on the hold's objects.
	LabelAppComponent = "app.kubernetes.io/component"
	GateHoldComponent = "hold"
)

// IsGateHold reports whether labels l mark an object of gate hold: both
// LabelAppName=GateHoldAppName and LabelAppComponent=GateHoldComponent.
func IsGateHold(l map[string]string) bool {
	return l[LabelAppName] == GateHoldAppName && l[LabelAppComponent] == GateHoldComponent
}

// SelectsOnlyGateHold reports whether a label selector (a
// PodDisruptionBudget's) selects gate hold's pods and no others: it matches
// the two labels of IsGateHold together but neither of them alone, so a
// selector of every upgradeguard pod, or of every "hold" component, is not
// the hold's. A nil or invalid selector selects nothing of it.
func SelectsOnlyGateHold(sel *metav1.LabelSelector) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set{LabelAppName: GateHoldAppName, LabelAppComponent: GateHoldComponent}) &&
		!s.Matches(labels.Set{LabelAppName: GateHoldAppName}) &&
		!s.Matches(labels.Set{LabelAppComponent: GateHoldComponent})
}
