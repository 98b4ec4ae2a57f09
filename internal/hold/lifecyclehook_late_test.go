package hold

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

// A hook with a 30 s heartbeat timeout has a global timeout of 50 min
// (100 x 30 s). A take-out may last the drain's timeout plus the wait for
// the load balancers (15m + 15m by default) and only one runs at a time:
// a node taken out only two heartbeat timeouts (1 min) before the global
// timeout would be terminated by AWS mid-drain. Held 25 min while the gate
// still says WAIT, the node must already be on its way out.
func TestLifecycleHookLateTakeOutLeavesTimeForTheTakeOut(t *testing.T) {
	ctx := context.Background()
	srv, a, g := hookGroup(t, 0, 2, 1)
	id := g.Instances[0]
	kube := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/" + id},
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
	if err := a.SetDesiredCapacity("nodes", 0); err != nil { // a scale-in
		t.Fatal(err)
	}
	for _, step := range []time.Duration{0, 25 * time.Minute} {
		now = now.Add(step)
		if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, _ := kube.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if n.Spec.Unschedulable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("held 25 min of a 50 min global timeout whose take-out may need 30 min: not taken out yet, AWS would terminate it mid-drain")
		}
	}
}

// A hook created by a person (the hold run without
// --aws.create-lifecycle-hook, as docs/hold.md allows) with AWS's minimum
// heartbeat timeout, 30 s, under the default 30 s interval: the hold's
// heartbeats, one per evaluation, cannot keep an instance waiting, and
// AWS's default result terminates it undrained. The command only checks the
// interval against the heartbeat timeout of a hook it creates; the hold
// must say so of the hook it finds.
func TestLifecycleHookFoundWithTooShortHeartbeatTimeoutIsReported(t *testing.T) {
	ctx := context.Background()
	srv, a, _ := hookGroup(t, 0, 2, 1)
	if err := a.PutLifecycleHook(awsfake.LifecycleHook{Group: "nodes", Name: DefaultLifecycleHookName, Transition: awsfake.TransitionTerminating, HeartbeatTimeout: 30, DefaultResult: "CONTINUE"}); err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset()
	r, _, logs := reporter(t, kube)
	tgt := &LifecycleHooks{
		Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Kube: kube, Groups: []string{"nodes"},
		Interval: 30 * time.Second,
	}
	if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, e := range events(t, kube) {
		warned = warned || (e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "heartbeat timeout of 30s"))
	}
	if !warned || !strings.Contains(logs.String(), "terminate undrained") {
		t.Errorf("a hook whose 30 s heartbeat timeout the 30 s interval cannot keep up with was taken charge of silently; events %v, logs %s", events(t, kube), logs.String())
	}
	if !tgt.Hooked("nodes") {
		t.Error("the hook is still taken charge of (heartbeats, drain on GO): better than none")
	}
}

// AWS counts the global timeout from the start of the wait. A hold that
// restarts (a new leader, its pod evicted, the node it ran on drained) after
// holding an instance 24 h of a 25 h global timeout (15m heartbeat timeout)
// must not count from its own first sight: it would take the node out 24 h
// too late, after AWS terminated it undrained. The first run records the
// start on the node; the next one reads it.
func TestLifecycleHookRestartKeepsTheWaitStart(t *testing.T) {
	ctx := context.Background()
	srv, a, g := hookGroup(t, 0, 2, 1)
	id := g.Instances[0]
	kube := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/" + id},
	})
	r, _, _ := reporter(t, kube)
	now := time.Now()
	run := func() *LifecycleHooks {
		return &LifecycleHooks{
			Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Kube: kube, Groups: []string{"nodes"},
			Create:  true,
			TakeOut: roll.TakeOutOptions{Deregistration: roll.DeregistrationOptions{Wait: 10 * time.Millisecond}},
			Now:     func() time.Time { return now },
		}
	}
	first := run()
	if err := first.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if err := a.SetDesiredCapacity("nodes", 0); err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if got := first.Holding(); len(got) != 1 {
		t.Fatalf("holding %v", got)
	}
	// 24 h later (the fake's hook timers run on real time: still waiting)
	// a new run of the hold, gate still WAIT.
	now = now.Add(24 * time.Hour)
	second := run()
	if err := second.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, _ := kube.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if n.Spec.Unschedulable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a restart 24 h into a 25 h global timeout the node is not taken out: AWS would terminate it undrained (annotations %v)", n.Annotations)
		}
	}
}

// A hook deleted while the hold runs (a person, an infrastructure tool
// applying the group's definition) no longer holds anything: the hold must
// notice, so that the group's instance refresh is cancelled again rather
// than left replacing undrained nodes while the gate says WAIT.
func TestLifecycleHookDeletedIsNoticed(t *testing.T) {
	ctx := context.Background()
	srv, a, _ := hookGroup(t, 0, 2, 1)
	kube := fake.NewClientset()
	r, _, _ := reporter(t, kube)
	now := time.Now()
	tgt := &LifecycleHooks{
		Client: autoscaling.NewFromConfig(srv.Config("eu-west-1")), Kube: kube, Groups: []string{"nodes"},
		Now: func() time.Time { return now },
	}
	if err := a.PutLifecycleHook(awsfake.LifecycleHook{Group: "nodes", Name: DefaultLifecycleHookName, Transition: awsfake.TransitionTerminating, HeartbeatTimeout: 900, DefaultResult: "CONTINUE"}); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if !tgt.Hooked("nodes") {
		t.Fatal("hook not found")
	}
	if err := a.DeleteLifecycleHook("nodes", DefaultLifecycleHookName); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		now = now.Add(time.Minute)
		if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
	}
	if tgt.Hooked("nodes") {
		t.Error("the hook was deleted 3 min ago and the hold still counts the group as paused at it (its refresh is never cancelled)")
	}
}
