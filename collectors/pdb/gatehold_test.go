package pdb

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// TestGateHoldMark: a budget whose selector requires both
// of deploy/hold's labels is marked as gate hold's own
// (upgradeguard_pdb_gate_hold); one of every upgradeguard pod, of every
// "hold" component, or of another app is not.
func TestGateHoldMark(t *testing.T) {
	hold := &metav1.LabelSelector{MatchLabels: map[string]string{kube.LabelAppName: kube.GateHoldAppName, kube.LabelAppComponent: kube.GateHoldComponent}}
	expr := &metav1.LabelSelector{
		MatchLabels: map[string]string{kube.LabelAppName: kube.GateHoldAppName},
		MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: kube.LabelAppComponent, Operator: metav1.LabelSelectorOpIn, Values: []string{kube.GateHoldComponent}},
		},
	}
	all := &metav1.LabelSelector{MatchLabels: map[string]string{kube.LabelAppName: kube.GateHoldAppName}}
	anyHold := &metav1.LabelSelector{MatchLabels: map[string]string{kube.LabelAppComponent: kube.GateHoldComponent}}
	e := start(t, fake.NewClientset(
		pdb("upgradeguard", "upgradeguard-hold", hold, 0, 2, 0, 1),
		pdb("upgradeguard", "hold-by-expression", expr, 0, 2, 0, 1),
		pdb("upgradeguard", "every-upgradeguard-pod", all, 0, 3, 1, 2),
		pdb("upgradeguard", "every-hold", anyHold, 0, 2, 0, 1),
		pdb("upgradeguard", "empty", &metav1.LabelSelector{}, 0, 2, 0, 1),
		pdb("shop", "web", app("web"), 1, 3, 3, 2),
	))
	if err := compare(t, e.collector, []string{
		`upgradeguard_pdb_gate_hold{namespace="upgradeguard",pdb="hold-by-expression"} 1`,
		`upgradeguard_pdb_gate_hold{namespace="upgradeguard",pdb="upgradeguard-hold"} 1`,
	}, "upgradeguard_pdb_gate_hold"); err != nil {
		t.Error(err)
	}
}
