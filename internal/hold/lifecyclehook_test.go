package hold

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

// The hold creates its hook (CONTINUE, the heartbeat timeout asked); an
// instance refresh's first termination waits in Terminating:Wait, its node
// untouched, while the gate says WAIT, past the hook's heartbeat timeout
// thanks to heartbeats; an instance without a node is completed at once;
// on GO the node is cordoned, labelled out of the load balancers and
// drained by the roll's code, then the action completed and the instance
// terminated.
func TestLifecycleHookHoldsTerminationsUntilGo(t *testing.T) {
	ctx := context.Background()
	srv, a, g := hookGroup(t, 1, 4, 2)
	a.SetLifecycleHookSecond(10 * time.Millisecond) // the hook's 30 s last 300 ms
	withNode, noNode := g.Instances[0], g.Instances[1]
	kube := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/" + withNode},
	})
	r, _, _ := reporter(t, kube)
	now := time.Now()
	tgt := &LifecycleHooks{
		Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Kube: kube, Groups: []string{"nodes"},
		Create: true, HeartbeatTimeout: 30 * time.Second,
		TakeOut: roll.TakeOutOptions{Deregistration: roll.DeregistrationOptions{Wait: 10 * time.Millisecond}},
		Now:     func() time.Time { return now },
	}
	if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	hs := a.LifecycleHooks("nodes")
	if len(hs) != 1 || hs[0].Name != DefaultLifecycleHookName || hs[0].DefaultResult != "CONTINUE" || hs[0].HeartbeatTimeout != 30 || hs[0].Transition != awsfake.TransitionTerminating {
		t.Fatalf("hook created: %+v", hs)
	}
	for _, id := range []string{withNode, noNode} {
		if err := a.CompleteLifecycleAction("nodes", DefaultLifecycleHookName, id, "CONTINUE"); err == nil {
			t.Fatal("an action before any termination")
		}
	}
	if _, err := a.StartInstanceRefresh("nodes", awsfake.InstanceRefreshSpec{MinHealthyPercentage: new(0)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(a.LifecycleActions("nodes")) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the refresh terminated nothing: %+v", a.LifecycleActions("nodes"))
		}
	}

	// WAIT, for longer than the heartbeat timeout (300 ms), Apply every
	// 50 ms of the fake's time and a simulated 10 s of the hold's.
	for range 12 {
		now = now.Add(10 * time.Second)
		if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if i, _ := a.Instance(noNode); i.State == "running" {
		t.Errorf("the instance without a node is still %s", i.State)
	}
	if i, _ := a.Instance(withNode); i.State != "running" {
		t.Fatalf("held instance %s while WAIT: %s", withNode, i.State)
	}
	if got := tgt.Holding(); len(got) != 1 || got[0] != withNode {
		t.Errorf("holding %v", got)
	}
	n, _ := kube.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	if n.Spec.Unschedulable || n.Labels[roll.LabelExcludeFromLoadBalancers] != "" {
		t.Errorf("node touched while WAIT: unschedulable %v, labels %v", n.Spec.Unschedulable, n.Labels)
	}
	if r := a.InstanceRefreshes("nodes")[0]; r.Status != "InProgress" {
		t.Errorf("refresh %s while a termination is held", r.Status)
	}

	// GO: taken out, completed, terminated.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		now = now.Add(10 * time.Second)
		if err := tgt.Apply(ctx, releaseDecision(), r); err != nil {
			t.Fatal(err)
		}
		if i, _ := a.Instance(withNode); i.State != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held instance was not released on GO")
		}
	}
	n, _ = kube.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	if !n.Spec.Unschedulable || n.Labels[roll.LabelExcludeFromLoadBalancers] != "true" {
		t.Errorf("node not taken out before the termination: unschedulable %v, labels %v", n.Spec.Unschedulable, n.Labels)
	}
	var how []string
	for _, e := range a.LifecycleEnds() {
		how = append(how, e.Instance+" "+e.How+" "+e.Result)
		if e.How != "completed" {
			t.Errorf("%s ended by %s, want completed by the hold", e.Instance, e.How)
		}
	}
	t.Logf("ends: %v", how)
}
