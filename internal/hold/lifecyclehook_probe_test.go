package hold

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

// staleFirstHeartbeat answers the first heartbeat of each instance with
// "No active Lifecycle Action", as Auto Scaling may right after the
// instance entered Terminating:Wait (its API is eventually consistent).
type staleFirstHeartbeat struct {
	LifecycleHookAPI
	mu   sync.Mutex
	seen map[string]bool
}

func (s *staleFirstHeartbeat) RecordLifecycleActionHeartbeat(ctx context.Context, in *autoscaling.RecordLifecycleActionHeartbeatInput, opts ...func(*autoscaling.Options)) (*autoscaling.RecordLifecycleActionHeartbeatOutput, error) {
	s.mu.Lock()
	first := !s.seen[*in.InstanceId]
	s.seen[*in.InstanceId] = true
	s.mu.Unlock()
	if first {
		return nil, &smithy.GenericAPIError{Code: "ValidationError", Message: "No active Lifecycle Action found with instance ID " + *in.InstanceId}
	}
	return s.LifecycleHookAPI.RecordLifecycleActionHeartbeat(ctx, in, opts...)
}

// Found by review: an instance whose first heartbeat found no action was
// taken for one waiting on another hook and never looked at again; its
// action timed out while the gate said WAIT and AWS terminated it with its
// node undrained. It is probed again every third of the heartbeat timeout.
func TestLifecycleHookProbesAgainAfterNoAction(t *testing.T) {
	ctx := context.Background()
	srv, a, g := hookGroup(t, 1, 4, 1)
	a.SetLifecycleHookSecond(10 * time.Millisecond) // the hook's 30 s last 300 ms
	id := g.Instances[0]
	kube := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/" + id},
	})
	r, _, _ := reporter(t, kube)
	now := time.Now()
	tgt := &LifecycleHooks{
		Client: &staleFirstHeartbeat{LifecycleHookAPI: autoscaling.NewFromConfig(srv.Config("eu-west-1")), seen: map[string]bool{}},
		Kube:   kube, Groups: []string{"nodes"}, Create: true, HeartbeatTimeout: 30 * time.Second,
		TakeOut: roll.TakeOutOptions{Deregistration: roll.DeregistrationOptions{Wait: 10 * time.Millisecond}},
		Now:     func() time.Time { return now },
	}
	if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StartInstanceRefresh("nodes", awsfake.InstanceRefreshSpec{MinHealthyPercentage: new(0)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(a.LifecycleActions("nodes")) < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the refresh terminated nothing")
		}
	}
	// WAIT for longer than the heartbeat timeout (300 ms of the fake's
	// time), Apply every 50 ms and a simulated 10 s of the hold's.
	for range 12 {
		now = now.Add(10 * time.Second)
		if err := tgt.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if i, _ := a.Instance(id); i.State != "running" {
		t.Fatalf("instance %s %s while the gate said WAIT: its action was let time out", id, i.State)
	}
	if got := tgt.Holding(); len(got) != 1 || got[0] != id {
		t.Errorf("holding %v, want [%s]", got, id)
	}
}
