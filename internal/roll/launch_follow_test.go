package roll

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// scriptedGroup is a Provider whose one group's members and activities
// the test sets.
type scriptedGroup struct {
	Provider // the calls waitLaunch does not make
	mu       sync.Mutex
	members  map[string]string // id -> lifecycle state
	acts     []Activity        // newest first
}

func (s *scriptedGroup) set(members map[string]string, acts ...Activity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = members
	s.acts = append(acts, s.acts...)
}

func (s *scriptedGroup) Group(_ context.Context, name string) (Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := Group{Name: name, Instances: map[string]string{}}
	for id, state := range s.members {
		g.Instances[id] = "eu-west-1a"
		if state == "InService" || state == "Pending" {
			g.InService = append(g.InService, id)
		}
	}
	return g, nil
}

func (s *scriptedGroup) Activities(context.Context, string, time.Time) ([]Activity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Activity(nil), s.acts...), nil
}

func (s *scriptedGroup) Describe(context.Context, []string) (map[string]Instance, error) {
	return map[string]Instance{}, nil
}

// A launch that failed, then one that succeeded and was claimed, then
// that instance replaced by Auto Scaling: while the group's next launch is
// on its way, the old failure (already retried) does not stop the wait;
// the roll follows the next instance. (Before, the failure window stayed
// at the first launch.)
func TestWaitLaunchFollowsAfterRetriedFailure(t *testing.T) {
	client := fake.NewClientset()
	var out bytes.Buffer
	cfg := Config{Client: client, Provider: nil, Gate: &script{}, Selection: Selection{NodeGroup: "nodes"}, Poll: 5 * time.Millisecond, NodeTimeout: 5 * time.Second, Out: &out}
	s := &scriptedGroup{}
	cfg.Provider = s
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	r := &roller{cfg: cfg, claimed: map[string]bool{}, planned: map[string]bool{},
		rep: &reporter{out: &out, logger: cfg.Logger, now: cfg.Now, start: cfg.Now()}}
	since := time.Now().Add(-10 * time.Second)
	s.set(map[string]string{"i-a": "InService"},
		Activity{Description: "Launching a new EC2 instance: i-a", Instance: "i-a", Launch: true, Status: "Successful", Start: since.Add(2 * time.Second)},
		Activity{Description: "Launching a new EC2 instance.  Status Reason: no capacity", Launch: true, Status: "Failed", Message: "no capacity", Start: since.Add(time.Second)},
	)
	go func() {
		// i-a never gets a Ready node; Auto Scaling replaces it.
		time.Sleep(100 * time.Millisecond)
		s.set(map[string]string{},
			Activity{Description: "Terminating EC2 instance: i-a", Cause: "At ... an EC2 health check indicating it has been terminated or stopped.", Status: "InProgress", Start: time.Now()})
		// The next launch comes 200ms later, with a Ready node.
		time.Sleep(200 * time.Millisecond)
		s.set(map[string]string{"i-b": "InService"},
			Activity{Description: "Launching a new EC2 instance: i-b", Instance: "i-b", Launch: true, Status: "Successful", Start: time.Now()})
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "node-b", Labels: map[string]string{kube.LabelKopsInstanceGroup: "nodes"}},
			Spec:       corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/i-b"},
			Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
		}
		_, _ = client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{})
	}()
	id, node, err := r.waitLaunch(context.Background(), "node-old", "nodes", since, since, nil)
	var le *LaunchError
	if errors.As(err, &le) {
		t.Fatalf("stopped on the launch failure retried before: %v\n%s", err, out.String())
	}
	if err != nil || id != "i-b" || node != "node-b" {
		t.Fatalf("got %q %q %v, want i-b on node-b\n%s", id, node, err, out.String())
	}
	if !strings.Contains(out.String(), "instance i-a left group nodes before its node was Ready (it is gone: At ... an EC2 health check") {
		t.Errorf("output:\n%s", out.String())
	}
}
