package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// nodeWatch samples the group's nodes and the shop Services every 200 ms:
// the last state of each node before it disappeared, and the samples in
// which a Service had no ready endpoint.
type nodeWatch struct {
	mu        sync.Mutex
	last      map[string]nodeSeen // node -> its last observation
	gone      map[string]nodeSeen // nodes that disappeared, as last seen
	noReady   []string            // "time service" of each sample without a ready endpoint
	cordoned  map[string]bool     // nodes ever seen cordoned
	evictions int                 // pods seen deleting
}

type nodeSeen struct {
	cordoned, excluded bool
	pods               int // workload pods bound and not deleting
}

func watchNodes(ctx context.Context, tb *testbed.Testbed, group string) *nodeWatch {
	w := &nodeWatch{last: map[string]nodeSeen{}, gone: map[string]nodeSeen{}, cordoned: map[string]bool{}}
	go func() {
		for ctx.Err() == nil {
			w.sample(ctx, tb, group)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return w
}

func (w *nodeWatch) sample(ctx context.Context, tb *testbed.Testbed, group string) {
	nodes, err := tb.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: testbed.DefaultNodeGroupLabel + "=" + group})
	if err != nil {
		return
	}
	pods, err := tb.Client.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	slices, err := tb.Client.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	now := map[string]nodeSeen{}
	for _, n := range nodes.Items {
		_, excl := n.Labels[roll.LabelExcludeFromLoadBalancers]
		now[n.Name] = nodeSeen{cordoned: n.Spec.Unschedulable, excluded: excl}
	}
	deleting := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			deleting++
			continue
		}
		if s, ok := now[p.Spec.NodeName]; ok {
			s.pods++
			now[p.Spec.NodeName] = s
		}
	}
	ready := map[string]int{}
	for _, s := range slices.Items {
		svc := s.Labels[discoveryv1.LabelServiceName]
		ready[svc] += 0
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready[svc]++
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, s := range w.last {
		if _, ok := now[name]; !ok {
			w.gone[name] = s
		}
	}
	for name, s := range now {
		if s.cordoned {
			w.cordoned[name] = true
		}
	}
	w.last = now
	w.evictions = max(w.evictions, deleting)
	for svc, n := range ready {
		if n == 0 {
			w.noReady = append(w.noReady, time.Now().Format("15:04:05.000")+" "+svc)
		}
	}
}

func (w *nodeWatch) snapshot() (gone map[string]nodeSeen, cordoned []string, noReady []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	gone = map[string]nodeSeen{}
	for k, v := range w.gone {
		gone[k] = v
	}
	for n, seen := range w.last {
		if seen.cordoned {
			cordoned = append(cordoned, n) // cordoned now
		}
	}
	return gone, cordoned, append([]string(nil), w.noReady...)
}

// TestGateHoldLifecycleHook (a real pause): gate hold
// takes charge of a termination lifecycle hook it creates. An instance
// refresh while an alert fires terminates and drains nothing (its first
// instance waits in Terminating:Wait past the hook's 30 s heartbeat
// timeout, heartbeated); once the alert resolves each node is cordoned,
// taken out of the load balancers and drained before its instance
// terminates, with no sample of a Service without a ready endpoint, and
// the refresh completes. The same for a scale-in.
func TestGateHoldLifecycleHook(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "holdtest.rules.yml")
	if err := os.WriteFile(rules, []byte(holdRules), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{rules}})
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Minute)
	defer cancel()

	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	acct := srv.Account()
	acct.SetTiming(awsfake.Timing{LaunchDelay: 2 * time.Second})
	acct.SetInstanceRefreshStep(500 * time.Millisecond)
	backed := tb.BackInstances(ctx, acct, nil)
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	sub, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.3.0.0/24", AZ: "eu-west-1a", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const group = "nodes-hooked"
	if _, err := acct.AddASG(awsfake.ASGSpec{Name: group, LaunchTemplate: lt.ID, Min: 1, Max: 4, Desired: 2, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	web := testbed.Workload{Namespace: "shop", Name: "web", Replicas: 2, MaxUnavailable: &one, Service: true,
		NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: group}}
	if err := tb.CreateWorkload(ctx, web); err != nil {
		t.Fatal(err)
	}
	startExporter(t, tb, bin, "")
	fault, stopFault, err := tb.ServeGauge("holdtest", "hold_test_fault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopFault)
	err = testbed.WaitFor(ctx, 4*time.Minute, "the web pods ready and the fault switch in Thanos", func(ctx context.Context) (bool, error) {
		pods, err := tb.Client.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		f, err := tb.QueryThanos(ctx, `hold_test_fault`, true)
		return err == nil && ready == 2 && len(f) == 1, fmt.Errorf("%d ready pods, %d fault series (%v)", ready, len(f), err)
	})
	if err != nil {
		t.Fatal(err)
	}

	// gate hold with deploy/hold's RBAC, creating the hook.
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "upgradeguard"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applyYAML(ctx, t, tb, filepath.Join("..", "..", "deploy", "hold", "rbac.yaml"))
	policy := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(policy, []byte(holdPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, err := tb.StartProcess("upgradeguard-hold", []string{bin, "gate", "hold",
		"--kubeconfig", saKubeconfig(ctx, t, tb, "upgradeguard", "upgradeguard-hold"), "--query.url", tb.ThanosQueryURL, "--policy", policy,
		"--no-leader-elect", "--web.listen-address", freeAddr(t), "--web.health-address", freeAddr(t),
		"--aws.instance-refresh-group", group, "--aws.region", "eu-west-1", "--aws.endpoint-url", srv.URL(),
		"--aws.create-lifecycle-hook", "--aws.lifecycle-hook-heartbeat-timeout", "30s"},
		[]string{"AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY=" + awsfake.SecretKey, "AWS_EC2_METADATA_DISABLED=true"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(proc.LogPath)
			t.Logf("gate hold's log:\n%s", b)
		}
	}()
	err = testbed.WaitFor(ctx, time.Minute, "the hold's lifecycle hook on the group", func(ctx context.Context) (bool, error) {
		hs := acct.LifecycleHooks(group)
		return len(hs) == 1 && hs[0].DefaultResult == "CONTINUE" && hs[0].HeartbeatTimeout == 30, fmt.Errorf("hooks %+v", hs)
	})
	if err != nil {
		t.Fatal(err)
	}
	watch := watchNodes(ctx, tb, group)

	// fire raises the alert and waits until the hold has seen it (two
	// intervals after Prometheus fires it).
	fire := func() {
		t.Helper()
		fault.Store(1)
		err := testbed.WaitFor(ctx, 2*time.Minute, "HoldTestFault firing", func(ctx context.Context) (bool, error) {
			at, err := firingSince(ctx, tb.PrometheusURLs[0], "HoldTestFault")
			return err == nil && !at.IsZero(), err
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * holdInterval)
	}
	// heldThrough checks, for longer than the heartbeat timeout, that the
	// instances waiting at the hook stay waiting, their nodes untouched.
	heldThrough := func(what string, want int) {
		t.Helper()
		err := testbed.WaitFor(ctx, time.Minute, what+" waiting at the hook", func(ctx context.Context) (bool, error) {
			a := acct.LifecycleActions(group)
			return len(a) >= want, fmt.Errorf("actions %+v", a)
		})
		if err != nil {
			t.Fatal(err)
		}
		began, ended := time.Now(), len(acct.LifecycleEnds())
		time.Sleep(40 * time.Second)
		if ends := acct.LifecycleEnds(); len(ends) != ended {
			t.Fatalf("%s: instances left the hook while the alert fired: %+v", what, ends)
		}
		if _, cordoned, _ := watch.snapshot(); len(cordoned) != 0 {
			t.Fatalf("%s: nodes cordoned while the alert fired: %v", what, cordoned)
		}
		t.Logf("%s: %d instance(s) held in Terminating:Wait for %s (heartbeat timeout 30 s), nothing cordoned or drained", what, len(acct.LifecycleActions(group)), time.Since(began).Round(time.Second))
	}
	// released resolves the alert and waits until done says so; every
	// instance that left the hook was completed by the hold after its node
	// was cordoned, excluded and drained.
	released := func(what string, done func() (bool, error)) {
		t.Helper()
		fault.Store(0)
		resolved := time.Now()
		if err := testbed.WaitFor(ctx, 6*time.Minute, what, func(context.Context) (bool, error) { return done() }); err != nil {
			t.Fatal(err)
		}
		t.Logf("measured: alert resolved in the gauge -> %s: %s", what, time.Since(resolved).Round(100*time.Millisecond))
		for _, e := range acct.LifecycleEnds() {
			if e.How != "completed" || e.Result != "CONTINUE" {
				t.Errorf("instance %s left the hook by %s %s, want completed CONTINUE by the hold", e.Instance, e.How, e.Result)
			}
		}
	}
	// nodeNames maps the instances to their nodes while they exist.
	nodeNames := map[string]string{}
	nodesOf := func(ids []string) {
		for _, id := range ids {
			if n, ok := backed.Node(id); ok {
				nodeNames[id] = n
			}
		}
	}
	checkDrained := func(what string, instances []string) {
		t.Helper()
		time.Sleep(time.Second) // a last sample
		gone, _, noReady := watch.snapshot()
		for _, id := range instances {
			node := nodeNames[id]
			s, ok := gone[node]
			switch {
			case !ok:
				t.Errorf("%s: node %s of instance %s not seen gone", what, node, id)
			case !s.cordoned || !s.excluded || s.pods != 0:
				t.Errorf("%s: node %s of instance %s was last seen cordoned %v, excluded %v, with %d pods before its instance terminated", what, node, id, s.cordoned, s.excluded, s.pods)
			}
		}
		if len(noReady) != 0 {
			t.Errorf("%s: samples of a Service without a ready endpoint: %v", what, noReady)
		}
	}

	// An instance refresh while the alert fires.
	g, _ := acct.ASG(group)
	original := g.Instances
	nodesOf(original)
	fire()
	refresh, err := acct.StartInstanceRefresh(group, awsfake.InstanceRefreshSpec{MinHealthyPercentage: new(50)})
	if err != nil {
		t.Fatal(err)
	}
	heldThrough("instance refresh", 1)
	if r := acct.InstanceRefreshes(group)[0]; r.ID != refresh || r.Status != "InProgress" {
		t.Fatalf("refresh while held: %+v", r)
	}
	released("instance refresh successful", func() (bool, error) {
		r := acct.InstanceRefreshes(group)[0]
		return r.Status == "Successful", fmt.Errorf("refresh %+v", r)
	})
	checkDrained("instance refresh", original)

	// A scale-in while the alert fires.
	g, _ = acct.ASG(group)
	before := g.Instances
	nodesOf(before)
	fire()
	if err := acct.SetDesiredCapacity(group, 1); err != nil {
		t.Fatal(err)
	}
	heldThrough("scale-in", 1)
	victim := acct.LifecycleActions(group)[0].Instance
	released("scale-in done", func() (bool, error) {
		g, _ := acct.ASG(group)
		return len(g.Instances) == 1 && len(acct.LifecycleActions(group)) == 0, fmt.Errorf("members %v, actions %+v", g.Instances, acct.LifecycleActions(group))
	})
	checkDrained("scale-in", []string{victim})
	if !strings.Contains(strings.Join(before, " "), victim) {
		t.Errorf("scale-in victim %s not among %v", victim, before)
	}
}
