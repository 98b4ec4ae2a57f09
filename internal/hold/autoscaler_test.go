package hold

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func node(name, group, kubelet string, mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kops.k8s.io/instancegroup": group}}}
	n.Status.NodeInfo.KubeletVersion = kubelet
	for _, m := range mutate {
		m(n)
	}
	return n
}

func annotated(t *testing.T, c *fake.Clientset) map[string]string {
	t.Helper()
	l, err := c.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range l.Items {
		if v, ok := n.Annotations[AnnotationScaleDownDisabled]; ok {
			out[n.Name] = v + "/" + n.Labels[LabelScaleDownDisabled]
		}
	}
	return out
}

func TestAutoscalerMarksUpgradingGroupsOnly(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(
		// nodes-a: mixed kubelets, an upgrade in progress.
		node("a1", "nodes-a", "v1.36.1"), node("a2", "nodes-a", "v1.37.2"),
		// nodes-b: one node cordoned; b2 was annotated by a person.
		node("b1", "nodes-b", "v1.37.2", func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		node("b2", "nodes-b", "v1.37.2", func(n *corev1.Node) {
			n.Annotations = map[string]string{AnnotationScaleDownDisabled: "true"}
		}),
		// nodes-c: steady.
		node("c1", "nodes-c", "v1.37.2"), node("c2", "nodes-c", "v1.37.2"),
	)
	r, reg, _ := reporter(t, c)
	a := &Autoscaler{Client: c}
	if err := a.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a1": "true/true", "a2": "true/true", "b1": "true/true", "b2": "true/"}
	if got := annotated(t, c); !equalMaps(got, want) {
		t.Errorf("held: %v, want %v", got, want)
	}
	for _, g := range []string{"nodes-a", "nodes-b"} {
		if v := gauge(t, reg, "upgradeguard_hold_active", "autoscaler/"+g); v != 1 {
			t.Errorf("hold_active{autoscaler/%s} %v", g, v)
		}
	}
	if n := len(events(t, c)); n != 3 {
		t.Errorf("%d Events, want one per node annotated (3)", n)
	}
	// nodes-a's upgrade finishes: its marks go while the hold goes on.
	for _, name := range []string{"a1"} {
		n, _ := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		n.Status.NodeInfo.KubeletVersion = "v1.37.2"
		if _, err := c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"b1": "true/true", "b2": "true/"}
	if got := annotated(t, c); !equalMaps(got, want) {
		t.Errorf("after nodes-a's upgrade: %v, want %v", got, want)
	}
	// The hold ends: only the hold's own annotations go.
	if err := a.Apply(ctx, releaseDecision(), r); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"b2": "true/"}
	if got := annotated(t, c); !equalMaps(got, want) {
		t.Errorf("released: %v, want %v (the person's annotation kept)", got, want)
	}
	if v := gauge(t, reg, "upgradeguard_hold_active", "autoscaler/nodes-b"); v != 0 {
		t.Errorf("hold_active{autoscaler/nodes-b} %v after the release", v)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
