package kube

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// The node transform keeps what the nodes collector (and through its series
// the gate's churn rules: taints and deletion) and
// collectors/cni read, and drops the rest; the stored Node is keyed by its
// name and gives its metadata through meta.Accessor.
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
	want := &Node{
		Meta:              Meta{Name: "n1", ResourceVersion: "7"},
		CreationTimestamp: created, DeletionTimestamp: &deleted,
		Labels:     map[string]string{"kops.k8s.io/instancegroup": "nodes"},
		ProviderID: "aws:///eu-west-1a/i-01", Unschedulable: true,
		Taints: []corev1.Taint{
			{Key: "ToBeDeletedByClusterAutoscaler", Value: "1795518000", Effect: corev1.TaintEffectNoSchedule},
			{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute},
		},
		KubeletVersion: "v1.37.2",
		Ready:          corev1.ConditionFalse,
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("StripNode:\n got %+v\nwant %+v", out, want)
	}
	if key, err := cache.MetaNamespaceKeyFunc(out); err != nil || key != "n1" {
		t.Errorf("key of the stripped node = %q, %v", key, err)
	}
	m, err := meta.Accessor(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.GetCreationTimestamp() != created || m.GetDeletionTimestamp() != &deleted || m.GetResourceVersion() != "7" {
		t.Errorf("metadata through meta.Accessor: created %v, deleted %v, resourceVersion %q",
			m.GetCreationTimestamp(), m.GetDeletionTimestamp(), m.GetResourceVersion())
	}
	// A node that has not posted a Ready condition yet: Unknown, as the
	// collector reports a missing one.
	bare, _ := StripNode(nil)(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new"}})
	if got := bare.(*Node).Ready; got != corev1.ConditionUnknown {
		t.Errorf("Ready of a node without the condition = %q, want Unknown", got)
	}
	if again, _ := StripNode(nil)(out); again != out {
		t.Errorf("a stripped node was changed: %v", again)
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "x"}
	if got, _ := StripNode(nil)(tomb); got != tomb {
		t.Errorf("a tombstone was changed: %v", got)
	}
}

// TestNodeDeepCopy: a Node's DeepCopyObject is equal to it and shares
// neither its labels map, its taints nor its deletion timestamp; it has no
// type metadata, as decoded objects have none.
func TestNodeDeepCopy(t *testing.T) {
	deleted := metav1.NewTime(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	n := &Node{Meta: Meta{Name: "n1", ResourceVersion: "7"}, DeletionTimestamp: &deleted,
		Labels: map[string]string{"zone": "a"}, Taints: []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}},
		Ready: corev1.ConditionTrue}
	cp := n.DeepCopyObject().(*Node)
	if !reflect.DeepEqual(cp, n) {
		t.Errorf("copy %+v, want %+v", cp, n)
	}
	cp.Labels["zone"], cp.Taints[0].Key, cp.DeletionTimestamp.Time = "b", "other", time.Time{}
	if n.Labels["zone"] != "a" || n.Taints[0].Key != "k" || !n.DeletionTimestamp.Equal(&deleted) {
		t.Errorf("changing the copy changed the original: %+v", n)
	}
	if !n.GetObjectKind().GroupVersionKind().Empty() {
		t.Errorf("kind %v, want none", n.GetObjectKind().GroupVersionKind())
	}
	if cp := (*Node)(nil).DeepCopyObject(); cp != nil {
		t.Errorf("copy of a nil *Node = %#v", cp)
	}
}

// Nodes with the same kept labels share one labels map; the labels not kept
// (the hostname here) do not split them.
func TestStripNodeSharesLabelMaps(t *testing.T) {
	strip := StripNode([]string{corev1.LabelTopologyZone, corev1.LabelInstanceTypeStable, "eks.amazonaws.com/nodegroup"})
	node := func(name, zone, group string) *Node {
		labels := map[string]string{corev1.LabelHostname: name, corev1.LabelInstanceTypeStable: "m5.xlarge", corev1.LabelTopologyZone: zone}
		if group != "" {
			labels["eks.amazonaws.com/nodegroup"] = group
		}
		out, err := strip(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
		if err != nil {
			t.Fatal(err)
		}
		return out.(*Node)
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
	if err != nil || none.(*Node).Labels != nil {
		t.Errorf("a node without kept labels: %v, %v", none.(*Node).Labels, err)
	}
}
