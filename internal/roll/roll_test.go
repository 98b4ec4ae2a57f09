package roll

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

func TestClassify(t *testing.T) {
	c := newCluster(t)
	cases := []struct {
		p    pod
		o    DrainOptions
		want podAction
	}{
		{pod{name: "rs", owner: "web"}, DrainOptions{}, actEvict},
		{pod{name: "ds", owner: "ds:agent"}, DrainOptions{}, actSkipDaemonSet},
		{pod{name: "mirror", mirror: true}, DrainOptions{}, actSkipMirror},
		{pod{name: "bare"}, DrainOptions{}, actRefuseUnmanaged},
		{pod{name: "bare-forced"}, DrainOptions{ForceUnmanaged: true}, actEvict},
		{pod{name: "scratch", owner: "batch", emptyDir: true}, DrainOptions{}, actRefuseLocal},
		{pod{name: "scratch-forced", owner: "batch", emptyDir: true}, DrainOptions{ForceLocalStorage: true}, actEvict},
		// Unmanaged with emptyDir needs both options.
		{pod{name: "both", emptyDir: true}, DrainOptions{ForceUnmanaged: true}, actRefuseLocal},
		// Nothing runs in a finished pod: deleted whatever it is.
		{pod{name: "done", emptyDir: true, phase: corev1.PodSucceeded}, DrainOptions{}, actEvict},
	}
	for _, tc := range cases {
		p := c.addPod(tc.p)
		if got := classify(p, tc.o); got != tc.want {
			t.Errorf("%s with %+v: %d, want %d", tc.p.name, tc.o, got, tc.want)
		}
	}
}

func TestDrainRetriesRefusalsThenEvicts(t *testing.T) {
	c := newCluster(t)
	c.addNode("n1", "g", "a", "", "v1.37.2")
	c.addNode("n2", "g", "a", "", "v1.37.2")
	c.addPod(pod{name: "web-1", node: "n1", owner: "web"})
	c.addPod(pod{name: "web-2", node: "n1", owner: "web"})
	c.addPod(pod{name: "agent", node: "n1", owner: "ds:agent"})
	c.addPod(pod{name: "other", node: "n2", owner: "web"})
	c.refuse["default/web-2"] = refusal429{n: 3, pdb: "web"}
	var refused []string
	d := &drainer{client: c.client, o: fastDrain(), onRefused: func(p, why string) { refused = append(refused, p+": "+why) }}
	evicted, err := d.drain(context.Background(), "n1")
	if err != nil {
		t.Fatal(err)
	}
	if evicted != 2 {
		t.Errorf("evicted %d, want 2", evicted)
	}
	if len(refused) != 3 || !strings.Contains(refused[0], "disruption budget web") {
		t.Errorf("refusals seen: %q, want 3 naming the budget", refused)
	}
	var left []string
	for _, p := range c.pods() {
		if p.Spec.NodeName == "n1" {
			left = append(left, p.Name)
		}
	}
	if !slices.Equal(left, []string{"agent"}) {
		t.Errorf("pods left on n1: %v, want only the DaemonSet's", left)
	}
}

func TestDrainStopsAtUnsatisfiableBudget(t *testing.T) {
	c := newCluster(t)
	c.addNode("n1", "g", "a", "", "v1.37.2")
	c.addPod(pod{ns: "payments", name: "ledger-1", node: "n1", owner: "ledger"})
	c.addPod(pod{name: "web-1", node: "n1", owner: "web"})
	zero := intstr.FromInt32(0)
	if _, err := c.client.PolicyV1().PodDisruptionBudgets("payments").Create(context.Background(), &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: "ledger"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &zero},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.refuse["payments/ledger-1"] = refusal429{n: 1 << 30, pdb: "ledger"}
	o := fastDrain()
	o.Timeout = time.Minute
	d := &drainer{client: c.client, o: o}
	began := time.Now()
	_, err := d.drain(context.Background(), "n1")
	var derr *DrainError
	if !errors.As(err, &derr) {
		t.Fatalf("got %v, want a DrainError", err)
	}
	if took := time.Since(began); took > 20*time.Second {
		t.Errorf("took %s: an unsatisfiable budget should end the drain at once, not at its timeout", took)
	}
	if !strings.Contains(err.Error(), "PodDisruptionBudget payments/ledger has maxUnavailable 0") {
		t.Errorf("error %q does not name the budget and why", err)
	}
	if derr.ExitCode() != 4 {
		t.Errorf("exit code %d", derr.ExitCode())
	}
}

func TestDrainTimeoutNamesTheBudget(t *testing.T) {
	c := newCluster(t)
	c.addNode("n1", "g", "a", "", "v1.37.2")
	c.addPod(pod{name: "web-1", node: "n1", owner: "web"})
	c.refuse["default/web-1"] = refusal429{n: 1 << 30, pdb: "web"} // no PDB object: not provably unsatisfiable
	o := fastDrain()
	o.Timeout = 300 * time.Millisecond
	d := &drainer{client: c.client, o: o}
	_, err := d.drain(context.Background(), "n1")
	if err == nil || !strings.Contains(err.Error(), "drain timeout 300ms passed") || !strings.Contains(err.Error(), "PodDisruptionBudget default/web") ||
		!strings.Contains(err.Error(), "default/web-1: Cannot evict pod") {
		t.Errorf("got %v, want the timeout, the budget and the pod left", err)
	}
}

func TestDrainRefusesBeforeEvictingAnything(t *testing.T) {
	c := newCluster(t)
	c.addNode("n1", "g", "a", "", "v1.37.2")
	c.addPod(pod{name: "web-1", node: "n1", owner: "web"})
	c.addPod(pod{name: "bare", node: "n1"})
	c.addPod(pod{name: "scratch", node: "n1", owner: "batch", emptyDir: true})
	d := &drainer{client: c.client, o: fastDrain()}
	_, err := d.drain(context.Background(), "n1")
	var derr *DrainError
	if !errors.As(err, &derr) || len(derr.Refused) != 2 {
		t.Fatalf("got %v, want a refusal of 2 pods", err)
	}
	for _, want := range []string{"default/bare: no controller", "--force-unmanaged", "default/scratch: emptyDir", "--force-local-storage"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(c.evictions) != 0 {
		t.Errorf("evicted %v before refusing", c.evictions)
	}
	o := fastDrain()
	o.ForceUnmanaged, o.ForceLocalStorage = true, true
	d = &drainer{client: c.client, o: o}
	if n, err := d.drain(context.Background(), "n1"); err != nil || n != 3 {
		t.Errorf("forced drain: %d evicted, %v", n, err)
	}
}

func TestPlanSelectionOutdatedAndOrder(t *testing.T) {
	c := newCluster(t)
	now := time.Now()
	mk := func(name, label, group, zone, kubelet string, age time.Duration) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(now.Add(-age)),
			Labels: map[string]string{label: group, corev1.LabelTopologyZone: zone, "tier": "x"}},
			Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: kubelet}}}
		if _, err := c.client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("a-old", kube.LabelKopsInstanceGroup, "nodes", "z1", "v1.36.4", 5*time.Hour)
	mk("b-mid", kube.LabelKopsInstanceGroup, "nodes", "z1", "v1.36.4", 4*time.Hour)
	mk("c-new", kube.LabelKopsInstanceGroup, "nodes", "z2", "v1.37.2", 1*time.Hour)
	mk("d-eks", kube.LabelEKSNodegroup, "nodes", "z2", "v1.36.4", 3*time.Hour)
	mk("e-other", kube.LabelKopsInstanceGroup, "other", "z1", "v1.36.4", 9*time.Hour)

	names := func(p *Plan) []string {
		var out []string
		for _, n := range p.Nodes {
			out = append(out, n.Name())
		}
		return out
	}
	for _, tc := range []struct {
		sel  Selection
		want []string
	}{
		{Selection{NodeGroup: "nodes"}, []string{"a-old", "b-mid", "d-eks", "c-new"}},
		{Selection{NodeGroup: "nodes", Order: OrderName}, []string{"a-old", "b-mid", "c-new", "d-eks"}},
		{Selection{NodeGroup: "nodes", Order: OrderZone}, []string{"a-old", "d-eks", "b-mid", "c-new"}},
		{Selection{NodeGroup: "nodes", OnlyOutdated: true}, []string{"a-old", "b-mid", "d-eks"}},
		{Selection{NodeGroup: "nodes", OnlyOutdated: true, KubeletVersion: "v1.36.0"}, nil},
		{Selection{NodeGroup: "nodes", NodeGroupLabel: kube.LabelEKSNodegroup}, []string{"d-eks"}},
		{Selection{Selector: "tier=x," + kube.LabelKopsInstanceGroup + "=other"}, []string{"e-other"}},
	} {
		p, err := makePlan(context.Background(), c.client, c.aws, tc.sel, now)
		if err != nil {
			t.Fatalf("%+v: %v", tc.sel, err)
		}
		if got := names(p); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.sel, got, tc.want)
		}
	}
	if _, err := makePlan(context.Background(), c.client, c.aws, Selection{NodeGroup: "nope"}, now); err == nil {
		t.Error("an empty selection is not an error")
	}
	if err := (Selection{}).validate(); err == nil {
		t.Error("no node group and no selector accepted")
	}
}

func TestPlanOutdatedLaunchTemplate(t *testing.T) {
	c := newCluster(t)
	c.addGroup("nodes", 3, nil)
	// A new default version: every instance is outdated, then one
	// replacement is launched from it.
	if _, err := c.acct.AddLaunchTemplateVersion("nodes", awsfake.LaunchTemplateData{InstanceType: "m6i.large"}, true); err != nil {
		t.Fatal(err)
	}
	sel := Selection{NodeGroup: "nodes", OnlyOutdated: true}
	p, err := makePlan(context.Background(), c.client, c.aws, sel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Nodes) != 3 || !strings.Contains(p.Nodes[0].Outdated[0], ":1, group launches lt-") || !strings.HasSuffix(p.Nodes[0].Outdated[0], ":2") {
		t.Fatalf("plan: %+v", p.Nodes)
	}
	inst := p.Nodes[0].Instance
	if err := c.aws.Terminate(context.Background(), inst, false); err != nil {
		t.Fatal(err)
	}
	p, err = makePlan(context.Background(), c.client, c.aws, sel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Nodes) != 2 || len(p.Skipped) != 1 || !strings.Contains(p.Skipped[0], "up to date") {
		t.Errorf("after one replacement: %d to do, skipped %v", len(p.Nodes), p.Skipped)
	}
	var out bytes.Buffer
	if err := p.Write(&out, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "new roll") || !strings.Contains(out.String(), "group launches") {
		t.Errorf("plan output:\n%s", out.String())
	}
}

func TestProviderAgainstFakeAWS(t *testing.T) {
	c := newCluster(t)
	tags := map[string]string{"kubernetes.io/cluster/prod": "owned"}
	c.addGroup("tagged", 2, tags)
	c.addGroup("untagged", 1, nil)
	var ids []string
	for _, i := range c.acct.Instances() {
		ids = append(ids, i.ID)
	}
	p := &AWS{AutoScaling: c.aws.AutoScaling, EC2: c.aws.EC2, ClusterName: "prod"}
	got, err := p.Describe(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("with a cluster name, %d instances described, want the tagged group's 2", len(got))
	}
	if _, err := p.Surge(context.Background(), "untagged"); err == nil || !strings.Contains(err.Error(), "tagged kubernetes.io/cluster/prod") {
		t.Errorf("surge of an untagged group: %v", err)
	}
	if d, err := p.Surge(context.Background(), "tagged"); err != nil || d != 3 {
		t.Fatal(d, err)
	}
	if g, _ := c.acct.ASG("tagged"); g.Desired != 3 {
		t.Errorf("desired after surge: %d", g.Desired)
	}
	if _, err := p.Surge(context.Background(), "tagged"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Surge(context.Background(), "tagged"); err == nil || !strings.Contains(err.Error(), "maximum size 4") {
		t.Errorf("surge past the maximum: %v", err)
	}
	var one Instance
	for _, i := range got {
		one = i
	}
	if err := p.Terminate(context.Background(), one, true); err != nil {
		t.Fatal(err)
	}
	if g, _ := c.acct.ASG("tagged"); g.Desired != 3 {
		t.Errorf("desired after a decrementing terminate: %d, want 3", g.Desired)
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
		t.Errorf("%d terminate calls", n)
	}
}

func TestStateCordonAndRelease(t *testing.T) {
	c := newCluster(t)
	c.addNode("free", "g", "a", "", "v1")
	c.addNode("held", "g", "a", "", "v1")
	held := c.node("held")
	held.Spec.Unschedulable = true
	if _, err := c.client.CoreV1().Nodes().Update(context.Background(), held, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := stateStore{client: c.client, now: time.Now}
	ctx := context.Background()
	for _, name := range []string{"free", "held"} {
		if err := s.join(ctx, name, "r1", 0, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.cordon(ctx, c.node(name)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.setStep(ctx, name, StepDraining, map[string]*string{AnnotationWorkloads: strp(`[{"ns":"a","kind":"ReplicaSet","name":"w","uid":"u","ready":3}]`)}); err != nil {
			t.Fatal(err)
		}
		n := c.node(name)
		st, err := readState(n)
		if err != nil {
			t.Fatal(err)
		}
		if !n.Spec.Unschedulable || st.Step != StepDraining || st.Roll != "r1" || len(st.Workloads) != 1 || st.Workloads[0].Ready != 3 {
			t.Errorf("%s: %+v unschedulable=%v", name, st, n.Spec.Unschedulable)
		}
		if err := s.release(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if c.node("free").Spec.Unschedulable {
		t.Error("the roll cordoned free and did not uncordon it")
	}
	if !c.node("held").Spec.Unschedulable {
		t.Error("the roll uncordoned held, which an operator had cordoned")
	}
	st, _ := readState(c.node("free"))
	if st.Step != StepPending || !st.HasLoads {
		t.Errorf("released state %+v: want pending, workloads kept", st)
	}
	bad := c.node("free")
	bad.Annotations[AnnotationStep] = "exploded"
	if _, err := readState(bad); err == nil {
		t.Error("an unknown step is read without error")
	}
}

// rollCluster is a group of n instances with a Deployment's pods spread on
// them, and a spare group where evicted pods can go.
func rollCluster(t *testing.T, n int32) *cluster {
	c := newCluster(t)
	c.addGroup("nodes", n, nil)
	c.addGroup("spare", 1, nil)
	for i, name := range c.groupNodes("nodes") {
		c.addPod(pod{ns: "shop", name: "web-" + name, node: name, owner: "web"})
		c.addPod(pod{ns: "kube-system", name: "agent-" + name, node: name, owner: "ds:agent"})
		if i == 0 {
			c.addPod(pod{ns: "shop", name: "api-" + name, node: name, owner: "api"})
		}
	}
	return c
}

func TestRunReplacesEveryNode(t *testing.T) {
	c := rollCluster(t, 3)
	old := c.groupNodes("nodes")
	g := &script{}
	var out bytes.Buffer
	res, err := Run(context.Background(), Config{
		Client: c.client, Provider: c.aws, Gate: g, GateWait: fastWait(),
		Selection: Selection{NodeGroup: "nodes"}, Drain: fastDrain(), Poll: 5 * time.Millisecond, NodeTimeout: 5 * time.Second, Out: &out,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.Nodes) != 3 {
		t.Fatalf("%d nodes replaced", len(res.Nodes))
	}
	now := c.groupNodes("nodes")
	if len(now) != 3 {
		t.Errorf("group has %d nodes after the roll", len(now))
	}
	for _, o := range old {
		if slices.Contains(now, o) {
			t.Errorf("old node %s still there", o)
		}
	}
	for _, p := range c.pods() {
		// DaemonSet pods go with their node (the fake has no pod GC).
		if slices.Contains(old, p.Spec.NodeName) && p.Namespace != "kube-system" {
			t.Errorf("pod %s/%s still on old node %s", p.Namespace, p.Name, p.Spec.NodeName)
		}
	}
	// One gate evaluation per node with it, one after the last without.
	if want := append(slices.Clone(old), ""); !slices.Equal(g.calls, want) {
		t.Errorf("gate asked for %q, want %q", g.calls, want)
	}
	for _, n := range now {
		if v, ok := c.node(n).Annotations[AnnotationRoll]; ok {
			t.Errorf("replacement %s carries the roll annotation %q", n, v)
		}
	}
	events, err := c.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range events.Items {
		reasons[e.Reason]++
	}
	for _, r := range []string{ReasonPlanned, ReasonGate, ReasonCordoned, ReasonDraining, ReasonDrained, ReasonTerminating, ReasonReplaced} {
		if reasons[r] != 3 {
			t.Errorf("%d %s events, want one per node (all: %v)", reasons[r], r, reasons)
		}
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 3 {
		t.Errorf("%d terminate calls", n)
	}
	if !strings.Contains(out.String(), "roll "+res.Plan.Roll+" done: 3 of 3 node(s) replaced") {
		t.Errorf("no summary:\n%s", out.String())
	}
}

func TestRunPausesOnWaitAndStopsAtGateTimeout(t *testing.T) {
	c := rollCluster(t, 3)
	old := c.groupNodes("nodes")
	// GO for the first node; then WAIT for ever.
	g := &script{fn: func(node string, n int) gate.Status {
		if node == old[0] {
			return gate.Pass
		}
		return gate.Fail
	}}
	w := fastWait()
	w.Timeout = 300 * time.Millisecond
	var out bytes.Buffer
	_, err := Run(context.Background(), Config{
		Client: c.client, Provider: c.aws, Gate: g, GateWait: w,
		Selection: Selection{NodeGroup: "nodes"}, Drain: fastDrain(), Poll: 5 * time.Millisecond, NodeTimeout: 5 * time.Second, Out: &out,
	})
	var stop *StoppedError
	if !errors.As(err, &stop) || stop.Node != old[1] || stop.ExitCode() != 3 {
		t.Fatalf("got %v, want a stop before %s", err, old[1])
	}
	if !strings.Contains(err.Error(), "TestAlert firing") || !strings.Contains(out.String(), "gate WAIT, roll paused: alerts FAIL: TestAlert firing") {
		t.Errorf("the reason is not given: %v\n%s", err, out.String())
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
		t.Errorf("%d terminations, want the first node's only", n)
	}
	n2 := c.node(old[1])
	if n2.Spec.Unschedulable {
		t.Errorf("%s was cordoned though the gate never said GO", old[1])
	}
	if g.count() < 3 {
		t.Errorf("the gate was asked %d times: a WAIT should keep it asking", g.count())
	}
}

func TestRunInterruptedMidDrainResumes(t *testing.T) {
	c := rollCluster(t, 3)
	old := c.groupNodes("nodes")
	// The second node's web pod is refused until the interruption.
	c.refuse["shop/web-"+old[1]] = refusal429{n: 1 << 30, pdb: "web"}
	ctx, cancel := context.WithCancel(context.Background())
	d := fastDrain()
	d.Timeout = time.Minute
	cfg := Config{
		Client: c.client, Provider: c.aws, Gate: &script{}, GateWait: fastWait(),
		Selection: Selection{NodeGroup: "nodes"}, Drain: d, Poll: 5 * time.Millisecond, NodeTimeout: 5 * time.Second,
	}
	go func() {
		for ctx.Err() == nil {
			if st, _ := readState(c.node(old[1])); st.Step == StepDraining {
				time.Sleep(50 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := Run(ctx, cfg)
	var ie *InterruptedError
	if !errors.As(err, &ie) || ie.Node != old[1] || ie.ExitCode() != 130 {
		t.Fatalf("got %v, want an interruption at %s", err, old[1])
	}
	n := c.node(old[1])
	st, _ := readState(n)
	if n.Spec.Unschedulable || st.Step != StepPending || !st.HasLoads {
		t.Errorf("after the interruption: unschedulable=%v state %+v; want uncordoned, pending, workloads kept", n.Spec.Unschedulable, st)
	}
	if calls := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); calls != 1 {
		t.Errorf("%d terminations, want the first node's only", calls)
	}
	// The budget lets go; the re-run resumes the same roll with the 2 nodes
	// left, in order, and replaces none of the new nodes.
	c.mu.Lock()
	delete(c.refuse, "shop/web-"+old[1])
	c.mu.Unlock()
	cfg.Out = &bytes.Buffer{}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Plan.Resumed || len(res.Nodes) != 2 || res.Nodes[0].Node != old[1] || res.Nodes[1].Node != old[2] {
		t.Errorf("resumed plan %+v, nodes %+v", res.Plan, res.Nodes)
	}
	for _, name := range c.groupNodes("nodes") {
		if slices.Contains(old, name) {
			t.Errorf("old node %s left", name)
		}
	}
	ready := 0
	for _, p := range c.pods() {
		if p.Namespace == "shop" && podReady(&p) && !slices.Contains(old, p.Spec.NodeName) {
			ready++
		}
	}
	if ready != 4 {
		t.Errorf("%d shop pods ready off the old nodes, want 4", ready)
	}
}

func TestRunSurge(t *testing.T) {
	c := rollCluster(t, 2)
	old := c.groupNodes("nodes")
	var out bytes.Buffer
	res, err := Run(context.Background(), Config{
		Client: c.client, Provider: c.aws, Gate: &script{}, GateWait: fastWait(), Surge: true,
		Selection: Selection{NodeGroup: "nodes"}, Drain: fastDrain(), Poll: 5 * time.Millisecond, NodeTimeout: 5 * time.Second, Out: &out,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if g, _ := c.acct.ASG("nodes"); g.Desired != 2 {
		t.Errorf("desired capacity %d after a surge roll, want 2 again", g.Desired)
	}
	if n := c.srv.Calls("SetDesiredCapacity"); n != 2 {
		t.Errorf("%d SetDesiredCapacity calls, want 2", n)
	}
	for _, nr := range res.Nodes {
		if nr.Replacement == "" || slices.Contains(old, nr.Replacement) {
			t.Errorf("%s: replacement %q", nr.Node, nr.Replacement)
		}
	}
}

func TestRunRefusesUnreplaceableNodes(t *testing.T) {
	c := newCluster(t)
	c.addNode("manual", "nodes", "a", "", "v1")
	_, err := Run(context.Background(), Config{Client: c.client, Provider: c.aws, Gate: &script{}, Selection: Selection{NodeGroup: "nodes"}})
	if err == nil || !strings.Contains(err.Error(), "manual: no EC2 instance id") {
		t.Errorf("got %v", err)
	}
	if st, _ := readState(c.node("manual")); st.Roll != "" {
		t.Error("a refused plan was recorded on the nodes")
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	c := rollCluster(t, 2)
	c.addPod(pod{name: "bare", node: c.groupNodes("nodes")[0]})
	var out bytes.Buffer
	_, err := Run(context.Background(), Config{Client: c.client, Provider: c.aws, DryRun: true, Selection: Selection{NodeGroup: "nodes"}, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "REFUSE 1: default/bare") {
		t.Errorf("dry run output:\n%s", out.String())
	}
	for _, n := range c.groupNodes("nodes") {
		if nd := c.node(n); nd.Spec.Unschedulable || nd.Annotations[AnnotationRoll] != "" {
			t.Errorf("dry run touched %s", n)
		}
	}
	if c.srv.Calls("TerminateInstanceInAutoScalingGroup") != 0 {
		t.Error("dry run terminated")
	}
}

func TestReset(t *testing.T) {
	c := rollCluster(t, 2)
	names := c.groupNodes("nodes")
	s := stateStore{client: c.client, now: time.Now}
	ctx := context.Background()
	for i, n := range names {
		if err := s.join(ctx, n, "r0", i, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.cordon(ctx, c.node(names[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, Config{Client: c.client, Provider: c.aws, Gate: &script{}, Reset: true, Selection: Selection{NodeGroup: "nodes"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		nd := c.node(n)
		for k := range nd.Annotations {
			if strings.HasPrefix(k, "upgradeguard.io/") {
				t.Errorf("%s keeps %s", n, k)
			}
		}
		if nd.Spec.Unschedulable {
			t.Errorf("%s still cordoned", n)
		}
	}
}
