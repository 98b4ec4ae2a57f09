package roll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// cluster is a fake Kubernetes API whose nodes are the instances of fake
// Auto Scaling groups, and whose evictions behave as a budget and a
// ReplicaSet would: refused while a budget says no, else the pod is deleted
// and its controller's new pod is Running and Ready on another node.
type cluster struct {
	t      *testing.T
	client *fake.Clientset
	srv    *awsfake.Server
	acct   *awsfake.Account
	aws    *AWS

	mu sync.Mutex
	// refuse makes the next n evictions of a pod (namespace/name) answer
	// 429 from the named PDB.
	refuse    map[string]refusal429
	evictions []string // namespace/name, accepted
	seq       int
	// multiPDB lists pods (namespace/name) that more than one budget
	// selects: the Eviction API answers 500.
	multiPDB map[string]bool
	// stuck lists nodes whose kubelet is gone: an evicted pod there gets
	// its deletionTimestamp and stays.
	stuck map[string]bool
	// dryRuns counts the evictions asked with dryRun.
	dryRuns int
}

type refusal429 struct {
	n   int
	pdb string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c := &cluster{t: t, client: fake.NewClientset(), srv: srv, acct: srv.Account(), refuse: map[string]refusal429{},
		multiPDB: map[string]bool{}, stuck: map[string]bool{}}
	cfg := srv.Config("eu-west-1")
	c.aws = &AWS{AutoScaling: autoscaling.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg),
		ELBv2: elasticloadbalancingv2.NewFromConfig(cfg), ELB: elasticloadbalancing.NewFromConfig(cfg)}
	c.acct.OnLaunch(func(inst awsfake.Instance) {
		if inst.ASG == "" {
			return
		}
		c.addNode(nodeName(inst), inst.ASG, inst.AZ, fmt.Sprintf("aws:///%s/%s", inst.AZ, inst.ID), "v1.37.2")
	})
	c.acct.OnTerminate(func(inst awsfake.Instance) {
		_ = c.client.CoreV1().Nodes().Delete(context.Background(), nodeName(inst), metav1.DeleteOptions{})
	})
	c.client.PrependReactor("create", "pods", c.evict)
	return c
}

func nodeName(inst awsfake.Instance) string {
	return "ip-" + strings.ReplaceAll(inst.PrivateIP, ".", "-")
}

func (c *cluster) addNode(name, group, zone, providerID, kubelet string) {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Now(), UID: types.UID("uid-" + name),
			Labels: map[string]string{kube.LabelKopsInstanceGroup: group, corev1.LabelTopologyZone: zone}},
		Spec: corev1.NodeSpec{ProviderID: providerID},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: kubelet},
		},
	}
	if _, err := c.client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		c.t.Errorf("creating node %s: %v", name, err)
	}
}

// addGroup creates an Auto Scaling group of size nodes.
func (c *cluster) addGroup(name string, size int32, tags map[string]string) {
	c.t.Helper()
	sub, err := c.acct.AddSubnet(awsfake.SubnetSpec{CIDR: fmt.Sprintf("10.%d.0.0/24", len(c.acct.Subnets())+1), AZ: "eu-west-1a", Tags: tags})
	if err != nil {
		c.t.Fatal(err)
	}
	lt, err := c.acct.AddLaunchTemplate(name, awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.acct.AddASG(awsfake.ASGSpec{Name: name, LaunchTemplate: lt.ID, Min: 0, Max: size + 2, Desired: size, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) nodes() []corev1.Node {
	c.t.Helper()
	l, err := c.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return l.Items
}

func (c *cluster) node(name string) *corev1.Node {
	c.t.Helper()
	n, err := c.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *cluster) groupNodes(group string) []string {
	var out []string
	for _, n := range c.nodes() {
		if n.Labels[kube.LabelKopsInstanceGroup] == group {
			out = append(out, n.Name)
		}
	}
	return out
}

// pod describes a pod to create.
type pod struct {
	ns, name, node string
	owner          string // ReplicaSet name; "" for none; "ds:<name>" for a DaemonSet
	emptyDir       bool
	mirror         bool
	phase          corev1.PodPhase
}

func (c *cluster) addPod(p pod) *corev1.Pod {
	c.t.Helper()
	if p.ns == "" {
		p.ns = "default"
	}
	if p.phase == "" {
		p.phase = corev1.PodRunning
	}
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, UID: types.UID("uid-" + p.ns + "-" + p.name), Annotations: map[string]string{}},
		Spec:       corev1.PodSpec{NodeName: p.node},
		Status: corev1.PodStatus{Phase: p.phase, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if p.owner != "" {
		kind, name := "ReplicaSet", p.owner
		if strings.HasPrefix(p.owner, "ds:") {
			kind, name = "DaemonSet", strings.TrimPrefix(p.owner, "ds:")
		}
		obj.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name,
			UID: types.UID("uid-" + kind + "-" + name), Controller: new(true)}}
	}
	if p.emptyDir {
		obj.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	}
	if p.mirror {
		obj.Annotations[mirrorAnnotation] = "x"
	}
	out, err := c.client.CoreV1().Pods(p.ns).Create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *cluster) pods() []corev1.Pod {
	c.t.Helper()
	l, err := c.client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return l.Items
}

// evict is the fake Eviction API.
func (c *cluster) evict(action k8stesting.Action) (bool, runtime.Object, error) {
	if action.GetSubresource() != "eviction" {
		return false, nil, nil
	}
	ev := action.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
	key := ev.Namespace + "/" + ev.Name
	dryRun := ev.DeleteOptions != nil && slices.Contains(ev.DeleteOptions.DryRun, metav1.DryRunAll)
	c.mu.Lock()
	if dryRun {
		c.dryRuns++
	}
	if c.multiPDB[key] {
		c.mu.Unlock()
		return true, nil, apierrors.NewInternalError(errors.New("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
	}
	r := c.refuse[key]
	if r.n > 0 {
		r.n--
		c.refuse[key] = r
		c.mu.Unlock()
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
			Type: policyv1.DisruptionBudgetCause, Message: fmt.Sprintf("The disruption budget %s needs 2 healthy pods and has 2 currently", r.pdb)})
		return true, nil, err
	}
	if dryRun {
		c.mu.Unlock()
		return true, nil, nil
	}
	c.evictions = append(c.evictions, key)
	c.seq++
	seq := c.seq
	c.mu.Unlock()
	tr := c.client.Tracker()
	obj, err := tr.Get(podsGVR, ev.Namespace, ev.Name)
	if err != nil {
		return true, nil, err
	}
	old := obj.(*corev1.Pod)
	c.mu.Lock()
	stuck := c.stuck[old.Spec.NodeName]
	c.mu.Unlock()
	switch {
	case stuck && old.DeletionTimestamp != nil:
		return true, nil, nil
	case stuck:
		// No kubelet confirms the deletion: the pod stays, Terminating
		// (its controller replaces it all the same).
		p := old.DeepCopy()
		p.DeletionTimestamp = new(metav1.Now())
		if err := tr.Update(podsGVR, p, p.Namespace); err != nil {
			return true, nil, err
		}
	default:
		if err := tr.Delete(podsGVR, ev.Namespace, ev.Name); err != nil {
			return true, nil, err
		}
	}
	// The controller's new pod, on another schedulable node.
	if ctrl := metav1.GetControllerOf(old); ctrl != nil && ctrl.Kind == "ReplicaSet" {
		var target string
		nodes, _ := tr.List(schema.GroupVersionResource{Version: "v1", Resource: "nodes"}, schema.GroupVersionKind{Version: "v1", Kind: "Node"}, "")
		for _, n := range nodes.(*corev1.NodeList).Items {
			if n.Name != old.Spec.NodeName && !n.Spec.Unschedulable {
				target = n.Name
				break
			}
		}
		np := old.DeepCopy()
		np.Name = fmt.Sprintf("%s-r%d", ctrl.Name, seq)
		np.UID = types.UID(fmt.Sprintf("uid-new-%d", seq))
		np.ResourceVersion = ""
		np.Spec.NodeName = target
		if err := tr.Create(podsGVR, np, np.Namespace); err != nil {
			return true, nil, err
		}
	}
	return true, nil, nil
}

// script is a gate that answers from a function of the node and the number
// of evaluations so far.
type script struct {
	mu    sync.Mutex
	calls []string
	fn    func(node string, n int) gate.Status
}

func (s *script) Evaluate(ctx context.Context, node string) (gate.Evaluation, error) {
	if err := ctx.Err(); err != nil {
		return gate.Evaluation{}, err
	}
	s.mu.Lock()
	s.calls = append(s.calls, node)
	n := len(s.calls)
	s.mu.Unlock()
	st := gate.Pass
	if s.fn != nil {
		st = s.fn(node, n)
	}
	e := gate.Evaluation{Node: node, Time: time.Now(), Checks: []gate.CheckResult{{Name: "alerts", Status: st}}}
	if st != gate.Pass {
		e.Checks[0].Why = "TestAlert firing"
	}
	return e, nil
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func fastWait() gate.WaitOptions {
	return gate.WaitOptions{Consecutive: 1, Interval: 10 * time.Millisecond, Timeout: 5 * time.Second}
}

func fastDrain() DrainOptions {
	return DrainOptions{Timeout: 5 * time.Second, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Poll: 5 * time.Millisecond}
}

// addZonedGroup creates an Auto Scaling group of size nodes over one
// subnet per zone (instances spread evenly), with room for two more.
func (c *cluster) addZonedGroup(name string, size int32, zones ...string) {
	c.t.Helper()
	var subnets []string
	base := len(c.acct.Subnets()) + 1
	for i, z := range zones {
		sub, err := c.acct.AddSubnet(awsfake.SubnetSpec{CIDR: fmt.Sprintf("10.%d.%d.0/24", base, i), AZ: z})
		if err != nil {
			c.t.Fatal(err)
		}
		subnets = append(subnets, sub.ID)
	}
	lt, err := c.acct.AddLaunchTemplate(name, awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.acct.AddASG(awsfake.ASGSpec{Name: name, LaunchTemplate: lt.ID, Min: 0, Max: size + 2, Desired: size, Subnets: subnets}); err != nil {
		c.t.Fatal(err)
	}
}

// setReady sets a node's Ready condition.
func (c *cluster) setReady(name string, status corev1.ConditionStatus) {
	c.t.Helper()
	n := c.node(name)
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			n.Status.Conditions[i].Status = status
		}
	}
	if _, err := c.client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// rollConfig is a fast roll of group "nodes".
func (c *cluster) rollConfig(g gate.Evaluator, out *bytes.Buffer) Config {
	cfg := Config{
		Client: c.client, Provider: c.aws, Gate: g, GateWait: fastWait(),
		Selection: Selection{NodeGroup: "nodes"}, Drain: fastDrain(), Poll: 5 * time.Millisecond, NodeTimeout: 5 * time.Second,
	}
	if out != nil {
		cfg.Out = out
	}
	return cfg
}
