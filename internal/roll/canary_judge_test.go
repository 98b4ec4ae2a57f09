package roll

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// canaryCluster is rollCluster's group of 3 nodes, each with a Ready pod of
// ReplicaSet web and of DaemonSet agent: web has 3 Ready pods on the old
// nodes (4 with the one the test puts on the canary's new node).
func canaryCluster(t *testing.T) (*cluster, []string) {
	c := rollCluster(t, 3)
	return c, c.groupNodes("nodes")
}

// newGroupNode is the node of group "nodes" not in old ("" when none yet).
func (c *cluster) newGroupNode(old []string) string {
	for _, n := range c.groupNodes("nodes") {
		if !slices.Contains(old, n) {
			return n
		}
	}
	return ""
}

// crashLooping is a pod of ReplicaSet web on node whose container the
// kubelet restarted and now backs off: CrashLoopBackOff, not Ready.
func crashLooping(name, node string) *corev1.Pod {
	now := metav1.Now()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name), CreationTimestamp: now,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "uid-ReplicaSet-web", Controller: new(true)}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "shop/web:broken"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", RestartCount: 4,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container=app"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: now}}}}},
	}
}

// The canary soak: --canary 1 --canary-soak, a Deployment of 4 replicas
// whose pod on the canary's new node crash-loops while 3 are Ready on the
// old nodes, within its maxUnavailable: the gate passes every evaluation
// (its fake here passes all), yet the soak must fail, naming the node, the
// pod, the container and the reason, before another node is touched. The
// re-run judges the same new node (the old canary node is gone by then),
// fails again while the pod crash-loops, and passes once it runs.
func TestRunCanarySoakJudgesTheNewNodes(t *testing.T) {
	c, old := canaryCluster(t)
	var out syncBuffer
	cfg := c.rollConfig(&script{}, nil)
	cfg.Out = &out
	cfg.GateWait.Interval = 20 * time.Millisecond
	cfg.Canary, cfg.CanarySoak = 1, 400*time.Millisecond
	// Once the soak runs, the new node's web pod crash-loops.
	go func() {
		for !strings.Contains(out.String(), "canary soak: holding") {
			time.Sleep(5 * time.Millisecond)
		}
		n := c.newGroupNode(old)
		if _, err := c.client.CoreV1().Pods("shop").Create(context.Background(), crashLooping("web-canary", n), metav1.CreateOptions{}); err != nil {
			t.Error(err)
		}
	}()
	res, err := Run(context.Background(), cfg)
	var ce *CanaryError
	if !errors.As(err, &ce) || ce.ExitCode() != 3 {
		t.Fatalf("got %v, want the canary soak to stop the roll\n%s", err, out.String())
	}
	newNode := c.newGroupNode(old)
	for _, want := range []string{"node " + newNode + " (replacing " + old[0] + ")", "pod shop/web-canary", "container app", "CrashLoopBackOff", "4 restart(s)",
		"ReplicaSet shop/web has 3 Ready pod(s) on other nodes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the stop does not say %q: %v", want, err)
		}
	}
	if len(res.Nodes) != 1 || res.Nodes[0].Node != old[0] {
		t.Errorf("replaced %+v, want the canary %s only", res.Nodes, old[0])
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
		t.Errorf("%d terminations, want the canary's", n)
	}
	if !strings.Contains(out.String(), "canary soak failed after") {
		t.Errorf("output:\n%s", out.String())
	}

	// The re-run holds the soak again and judges the same new node, known
	// from the main nodes' annotation: the pod still crash-loops.
	out.Reset()
	_, err = Run(context.Background(), cfg)
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "pod shop/web-canary container app: CrashLoopBackOff") {
		t.Fatalf("re-run: got %v, want the soak to fail again on the same pod\n%s", err, out.String())
	}
	// Fixed: the pod runs and is Ready; the next re-run passes the soak.
	p, err := c.client.CoreV1().Pods("shop").Get(context.Background(), "web-canary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
	p.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{}
	p.Status.ContainerStatuses[0].Ready = true
	p.Status.Conditions[1].Status = corev1.ConditionTrue
	if _, err := c.client.CoreV1().Pods("shop").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	res, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("re-run after the fix: %v\n%s", err, out.String())
	}
	if len(res.Nodes) != 2 || !strings.Contains(out.String(), "canary soak passed: ") || !strings.Contains(out.String(), "judging the new node(s) "+newNode) {
		t.Errorf("re-run after the fix: %d nodes; output:\n%s", len(res.Nodes), out.String())
	}
}

// A healthy canary passes: the new node's pods (a web replica, the
// DaemonSet's agent) Ready, nothing restarting.
func TestRunCanarySoakPassesAHealthyCanary(t *testing.T) {
	c, old := canaryCluster(t)
	var out syncBuffer
	cfg := c.rollConfig(&script{}, nil)
	cfg.Out = &out
	cfg.GateWait.Interval = 20 * time.Millisecond
	cfg.Canary, cfg.CanarySoak = 1, 300*time.Millisecond
	go func() {
		for !strings.Contains(out.String(), "canary soak: holding") {
			time.Sleep(5 * time.Millisecond)
		}
		n := c.newGroupNode(old)
		c.addPod(pod{ns: "shop", name: "web-canary", node: n, owner: "web"})
		c.addPod(pod{ns: "kube-system", name: "agent-canary", node: n, owner: "ds:agent"})
	}()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Nodes) != 3 || !strings.Contains(out.String(), "canary soak passed: ") {
		t.Errorf("%d nodes replaced; output:\n%s", len(res.Nodes), out.String())
	}
}

// The sibling before the soak: the canary node's replacement has a pod
// that cannot start while the roll waits for the evicted workloads. The
// roll stops there (the wait would otherwise run into --node-timeout with
// "N of M pods ready", or pass when the workload is back elsewhere), naming
// the pod, before the soak and before any other node.
func TestRunCanaryWaitJudgesTheNewNode(t *testing.T) {
	c, old := canaryCluster(t)
	// The DaemonSet's pod on every new node of the group cannot pull its
	// image.
	var added atomic.Bool
	c.client.PrependReactor("create", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		n := a.(k8stesting.CreateAction).GetObject().(*corev1.Node)
		if n.Labels[kube.LabelKopsInstanceGroup] != "nodes" || added.Swap(true) {
			return false, nil, nil
		}
		p := crashLooping("agent-new", n.Name)
		p.Namespace, p.UID = "kube-system", "uid-agent-new"
		p.OwnerReferences[0].Kind, p.OwnerReferences[0].Name, p.OwnerReferences[0].UID = "DaemonSet", "agent", "uid-DaemonSet-agent"
		p.Status.ContainerStatuses[0].RestartCount = 0
		p.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{}
		p.Status.ContainerStatuses[0].State.Waiting = &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "agent:v2"`}
		if err := c.client.Tracker().Add(p); err != nil {
			t.Error(err)
		}
		return false, nil, nil
	})
	var out syncBuffer
	cfg := c.rollConfig(&script{}, nil)
	cfg.Out = &out
	cfg.Canary, cfg.CanarySoak = 1, time.Minute
	res, err := Run(context.Background(), cfg)
	var ce *CanaryError
	if !errors.As(err, &ce) || ce.ExitCode() != 3 || ce.Node != old[0] {
		t.Fatalf("got %v, want a canary stop at %s\n%s", err, old[0], out.String())
	}
	for _, want := range []string{"after canary node " + old[0] + " was replaced, before the soak", "pod kube-system/agent-new container app: ImagePullBackOff",
		`Back-off pulling image "agent:v2"`, "DaemonSet kube-system/agent has", "Ready pod(s) on other nodes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the stop does not say %q: %v", want, err)
		}
	}
	if strings.Contains(out.String(), "canary soak: holding") || len(res.Nodes) != 1 || c.srv.Calls("TerminateInstanceInAutoScalingGroup") != 1 {
		t.Errorf("%d nodes replaced; output:\n%s", len(res.Nodes), out.String())
	}
}

// The judge's rules on small inputs, at a fixed time.
func TestCanaryJudge(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	ready := func(name, node string, owner string) pod {
		return pod{ns: "shop", name: name, node: node, owner: owner}
	}
	type step struct {
		at    time.Duration // after t0
		setup func(c *cluster)
		n     int      // findings
		want  []string // substrings of the findings, in order
		start []string // pods still starting
		excus int
	}
	cases := []struct {
		name  string
		setup func(c *cluster)
		since bool
		steps []step
	}{{
		name: "not Ready within the start-up grace, then past it",
		setup: func(c *cluster) {
			c.addPod(ready("web-a", "old-1", "web"))
			p := c.addPod(ready("web-new", "new-1", "web"))
			p.CreationTimestamp = metav1.NewTime(t0)
			p.Spec.Containers = []corev1.Container{{Name: "app", ReadinessProbe: &corev1.Probe{InitialDelaySeconds: 30}}}
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			c.update(p)
		},
		// The grace: 3m + 30s + 10s x 3.
		steps: []step{{at: 3*time.Minute + 59*time.Second, start: []string{"shop/web-new"}},
			{at: 4*time.Minute + time.Second, n: 1, want: []string{"node new-1 (replacing old-9): pod shop/web-new: NotReady", "container app running, its readiness probe not passing", "has 1 Ready pod(s) on other nodes"}}},
	}, {
		name: "a restart during the soak; one before it is not held against the canary",
		setup: func(c *cluster) {
			p := c.addPod(ready("web-new", "new-1", "web"))
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Ready: true, RestartCount: 1,
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled", FinishedAt: metav1.NewTime(t0.Add(-time.Minute))}}}}
			c.update(p)
		},
		since: true,
		steps: []step{{at: time.Second}, {at: 2 * time.Second, setup: func(c *cluster) {
			p := c.get("shop", "web-new")
			p.Status.ContainerStatuses[0].RestartCount = 2
			p.Status.ContainerStatuses[0].LastTerminationState.Terminated.FinishedAt = metav1.NewTime(t0.Add(time.Second))
			c.update(p)
		}, n: 1, want: []string{"pod shop/web-new container app: Restarted (restarted during the soak, 2 restart(s), last exit code 137 (OOMKilled); ReplicaSet shop/web has no pod on other nodes)"}}},
	}, {
		name: "a workload broken everywhere is the gate's business",
		setup: func(c *cluster) {
			for _, n := range []string{"old-1", "old-2"} {
				p := crashLooping("web-"+n, n)
				c.create(p)
			}
			c.create(crashLooping("web-new", "new-1"))
		},
		steps: []step{{at: time.Second, excus: 1}},
	}, {
		name: "the new node not Ready, a pod nominated for it and Pending, a pod the node's admission rejected",
		setup: func(c *cluster) {
			c.setReady("new-1", corev1.ConditionFalse)
			p := c.addPod(pod{ns: "shop", name: "big", owner: "big", phase: corev1.PodPending})
			p.Status.NominatedNodeName = "new-1"
			p.CreationTimestamp = metav1.NewTime(t0)
			c.update(p)
			f := c.addPod(pod{ns: "shop", name: "rejected", node: "new-1", phase: corev1.PodFailed})
			f.Status.Reason, f.Status.Message = "OutOfcpu", "Node didn't have enough resource: cpu"
			c.update(f)
		},
		steps: []step{{at: time.Minute, n: 2, want: []string{"node new-1 (replacing old-9): NodeNotReady (Ready False", "pod shop/rejected: OutOfcpu (Node didn't have enough resource: cpu)"}, start: []string{"shop/big"}},
			{at: 10 * time.Minute, n: 3, want: []string{"NodeNotReady", "pod shop/rejected: OutOfcpu", "pod shop/big: Pending (nominated for the new node, not bound 10m0s later; ReplicaSet shop/big has no pod on other nodes)"}}},
	}, {
		// Found by review: a large image still being pulled on the cold new
		// node is not a failure at 3 minutes; the kubelet says so at once
		// when a pull fails.
		name: "a container still being created gets longer",
		setup: func(c *cluster) {
			c.addPod(ready("web-a", "old-1", "web"))
			p := c.addPod(ready("web-new", "new-1", "web"))
			p.CreationTimestamp = metav1.NewTime(t0)
			p.Spec.Containers = []corev1.Container{{Name: "app"}}
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
			c.update(p)
		},
		steps: []step{{at: 5 * time.Minute, start: []string{"shop/web-new"}},
			{at: 14 * time.Minute, n: 1, want: []string{"pod shop/web-new: NotReady", "container app waiting: ContainerCreating"}}},
	}, {
		// Found by review: a Job's pods run to completion; a failed run, or
		// a non-native sidecar still running, is the Job's business. A pod
		// the new node cannot run (its image, the kubelet's admission) still
		// fails the canary.
		name: "a Job's pods are judged for what the node cannot run only",
		setup: func(c *cluster) {
			job := func(name string, phase corev1.PodPhase) *corev1.Pod {
				p := c.addPod(pod{ns: "shop", name: name, node: "new-1", phase: phase})
				p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "report-" + name, UID: types.UID("uid-job-" + name), Controller: new(true)}}
				p.CreationTimestamp = metav1.NewTime(t0)
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
				return p
			}
			failed := job("failed", corev1.PodFailed)
			failed.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}}}
			c.update(failed)
			sidecar := job("sidecar", corev1.PodRunning)
			sidecar.Status.ContainerStatuses = []corev1.ContainerStatus{
				{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}},
				{Name: "proxy", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
			c.update(sidecar)
			pull := job("pull", corev1.PodPending)
			pull.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}}
			c.update(pull)
			rejected := job("rejected", corev1.PodFailed)
			rejected.Status.Reason, rejected.Status.Message = "OutOfmemory", "Node didn't have enough resource: memory"
			c.update(rejected)
		},
		steps: []step{{at: 20 * time.Minute, n: 2, want: []string{"pod shop/pull container main: ImagePullBackOff", "pod shop/rejected: OutOfmemory"}}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			for _, n := range []string{"old-1", "old-2", "new-1"} {
				c.addNode(n, "nodes", "eu-west-1a", "aws:///eu-west-1a/i-"+n, "v1.37.2")
			}
			tc.setup(c)
			now := t0
			j := newCanaryJudge(c.client, func() time.Time { return now }, map[string]string{"new-1": "old-9"}, nil)
			if tc.since {
				j.since = t0
			}
			for i, s := range tc.steps {
				now = t0.Add(s.at)
				if s.setup != nil {
					s.setup(c)
				}
				v, err := j.judge(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range v.Findings {
					got = append(got, f.String())
				}
				if len(got) != s.n {
					t.Fatalf("step %d: findings %q, want %d", i, got, s.n)
				}
				rest := strings.Join(got, "\n")
				for _, w := range s.want {
					k := strings.Index(rest, w)
					if k < 0 {
						t.Errorf("step %d: findings %q, want %q in them (in order)", i, got, w)
						continue
					}
					rest = rest[k+len(w):]
				}
				var starting []string
				for p := range v.Starting {
					starting = append(starting, p)
				}
				slices.Sort(starting)
				if !slices.Equal(starting, s.start) {
					t.Errorf("step %d: starting %v, want %v", i, starting, s.start)
				}
				if len(v.Excused) != s.excus {
					t.Errorf("step %d: excused %q, want %d", i, v.Excused, s.excus)
				}
			}
		})
	}
}

func (c *cluster) update(p *corev1.Pod) {
	c.t.Helper()
	if err := c.client.Tracker().Update(podsGVR, p, p.Namespace); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) create(p *corev1.Pod) {
	c.t.Helper()
	if err := c.client.Tracker().Add(p); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) get(ns, name string) *corev1.Pod {
	c.t.Helper()
	p, err := c.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// The wait for a node's evicted workloads names the pods that keep a
// workload short, and why (it said only "N of M pods ready" before): a
// container in CrashLoopBackOff, a pod the scheduler could not place.
func TestWorkloadsBackNamesThePods(t *testing.T) {
	c := newCluster(t)
	c.addPod(pod{ns: "shop", name: "web-a", node: "old-1", owner: "web"})
	c.create(crashLooping("web-b", "new-1"))
	p := c.addPod(pod{ns: "shop", name: "web-c", owner: "web", phase: corev1.PodPending})
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 node(s) didn't satisfy existing pods anti-affinity rules."}}
	c.update(p)
	missing, err := workloadsBack(context.Background(), c.client, []Workload{{Namespace: "shop", Kind: "ReplicaSet", Name: "web", UID: "uid-ReplicaSet-web", Ready: 3}}, "old-9")
	if err != nil {
		t.Fatal(err)
	}
	want := "ReplicaSet shop/web: 1 of 3 pods ready (pod shop/web-b on new-1: container app CrashLoopBackOff, 4 restart(s); " +
		"pod shop/web-c Pending: 0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 node(s) didn't satisfy existing pods anti-affinity rules.)"
	if len(missing) != 1 || missing[0] != want {
		t.Errorf("missing %q\nwant %q", missing, want)
	}
}

// A pod on the new node still starting (scheduled, not Ready yet, within
// its start-up grace) when the soak's time is up: the soak waits for it,
// and passes once it is Ready.
func TestRunCanarySoakWaitsForStartingPods(t *testing.T) {
	c, old := canaryCluster(t)
	var out syncBuffer
	cfg := c.rollConfig(&script{}, nil)
	cfg.Out = &out
	cfg.GateWait.Interval = 20 * time.Millisecond
	cfg.Canary, cfg.CanarySoak = 1, 200*time.Millisecond
	var readyAt atomic.Int64
	go func() {
		for !strings.Contains(out.String(), "canary soak: holding") {
			time.Sleep(5 * time.Millisecond)
		}
		p := crashLooping("web-slow", c.newGroupNode(old))
		p.Status.ContainerStatuses[0] = corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}
		c.create(p)
		time.Sleep(600 * time.Millisecond)
		p.Status.ContainerStatuses[0].Ready = true
		p.Status.Conditions[1].Status = corev1.ConditionTrue
		readyAt.Store(time.Now().UnixNano())
		c.update(p)
	}()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	passed := time.Now()
	o := out.String()
	if len(res.Nodes) != 3 || !strings.Contains(o, "waiting for pod(s) still starting on the new node(s): shop/web-slow (grace until ") || !strings.Contains(o, "canary soak passed: ") {
		t.Errorf("%d nodes replaced; output:\n%s", len(res.Nodes), o)
	}
	if r := readyAt.Load(); r == 0 || passed.Before(time.Unix(0, r)) {
		t.Errorf("the roll ended before the starting pod was Ready")
	}
}
