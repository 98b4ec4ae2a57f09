package kube

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The node transform keeps what the nodes collector and the gate's churn
// rules read (issue 12 item 5: taints and deletion) and drops the rest.
func TestStripNode(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC))
	deleted := metav1.NewTime(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	in := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: "n1", UID: "u1", ResourceVersion: "7", CreationTimestamp: created, DeletionTimestamp: &deleted,
			Labels:      map[string]string{"kops.k8s.io/instancegroup": "nodes", "unrelated": "x"},
			Annotations: map[string]string{"big": "annotation"},
			Finalizers:  []string{"karpenter.sh/termination"},
		},
		Spec: corev1.NodeSpec{
			ProviderID: "aws:///eu-west-1a/i-01", Unschedulable: true, PodCIDR: "10.0.0.0/24",
			Taints: []corev1.Taint{
				{Key: "ToBeDeletedByClusterAutoscaler", Value: "1795518000", Effect: corev1.TaintEffectNoSchedule},
				{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute, TimeAdded: &deleted},
			},
		},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian"},
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
				{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", Message: "long", LastTransitionTime: created},
			},
			Images: []corev1.ContainerImage{{Names: []string{"pause"}}},
		},
	}
	out, err := StripNode([]string{"kops.k8s.io/instancegroup"})(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: "n1", UID: "u1", ResourceVersion: "7", CreationTimestamp: created, DeletionTimestamp: &deleted,
			Labels: map[string]string{"kops.k8s.io/instancegroup": "nodes"},
		},
		Spec: corev1.NodeSpec{
			ProviderID: "aws:///eu-west-1a/i-01", Unschedulable: true,
			Taints: []corev1.Taint{
				{Key: "ToBeDeletedByClusterAutoscaler", Value: "1795518000", Effect: corev1.TaintEffectNoSchedule},
				{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute},
			},
		},
		Status: corev1.NodeStatus{
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletNotReady", LastTransitionTime: created}},
		},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("StripNode:\n got %+v\nwant %+v", out, want)
	}
}

// Nodes with the same kept labels share one labels map; the labels not kept
// (the hostname here) do not split them.
func TestStripNodeSharesLabelMaps(t *testing.T) {
	strip := StripNode([]string{corev1.LabelTopologyZone, corev1.LabelInstanceTypeStable, "eks.amazonaws.com/nodegroup"})
	node := func(name, zone, group string) *corev1.Node {
		labels := map[string]string{corev1.LabelHostname: name, corev1.LabelInstanceTypeStable: "m5.xlarge", corev1.LabelTopologyZone: zone}
		if group != "" {
			labels["eks.amazonaws.com/nodegroup"] = group
		}
		out, err := strip(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Node)
	}
	same := func(a, b map[string]string) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	a, b := node("a", "eu-west-1a", "blue"), node("b", "eu-west-1a", "blue")
	c, d := node("c", "eu-west-1b", "blue"), node("d", "eu-west-1a", "")
	if want := map[string]string{corev1.LabelTopologyZone: "eu-west-1a", corev1.LabelInstanceTypeStable: "m5.xlarge", "eks.amazonaws.com/nodegroup": "blue"}; !reflect.DeepEqual(a.Labels, want) {
		t.Errorf("labels %v, want %v", a.Labels, want)
	}
	if !same(a.Labels, b.Labels) {
		t.Error("two nodes of one group have two labels maps")
	}
	if same(a.Labels, c.Labels) || same(a.Labels, d.Labels) || len(d.Labels) != 2 {
		t.Errorf("nodes of other zones or groups share a's labels: c %v, d %v", c.Labels, d.Labels)
	}
	none, err := strip(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare", Labels: map[string]string{"x": "y"}}})
	if err != nil || none.(*corev1.Node).Labels != nil {
		t.Errorf("a node without kept labels: %v, %v", none.(*corev1.Node).Labels, err)
	}
}
