package roll

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// serviceController models what the cloud provider's service controller
// (k8s.io/cloud-provider controllers/service/controller.go) does to the
// load balancers of Services of type LoadBalancer in instance mode: every
// node that nodeIncludedPredicate admits (no
// node.kubernetes.io/exclude-from-external-load-balancers label, or one
// that parses as false) is registered, every other one deregistered, in a
// sync that shouldSyncUpdatedNode starts when the label changes (here:
// after lag). A cordon changes nothing (kubernetes/kubernetes#90823).
type serviceController struct {
	c          *cluster
	tgs, clbs  []string
	lag        time.Duration
	stop       chan struct{}
	done       sync.WaitGroup
	excludedAt map[string]time.Time
}

func (c *cluster) startServiceController(lag time.Duration, tgs, clbs []string) *serviceController {
	sc := &serviceController{c: c, tgs: tgs, clbs: clbs, lag: lag, stop: make(chan struct{}), excludedAt: map[string]time.Time{}}
	sc.done.Go(func() {
		for {
			select {
			case <-sc.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			sc.sync()
		}
	})
	c.t.Cleanup(sc.halt)
	return sc
}

func (sc *serviceController) halt() {
	select {
	case <-sc.stop:
	default:
		close(sc.stop)
	}
	sc.done.Wait()
}

func included(labels map[string]string) bool {
	v, has := labels[LabelExcludeFromLoadBalancers]
	if !has {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err == nil && !b
}

func (sc *serviceController) sync() {
	nodes, err := sc.c.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, n := range nodes.Items {
		id := kube.InstanceID(n.Spec.ProviderID)
		if id == "" {
			continue
		}
		if included(n.Labels) {
			delete(sc.excludedAt, id)
			for _, tg := range sc.tgs {
				registered := false
				for _, h := range sc.c.acct.Targets(tg) {
					registered = registered || h.ID == id && h.State == "healthy"
				}
				if !registered {
					_ = sc.c.acct.RegisterTargets(tg, id)
				}
			}
			for _, lb := range sc.clbs {
				_ = sc.c.acct.RegisterWithClassic(lb, id)
			}
			continue
		}
		at, seen := sc.excludedAt[id]
		if !seen {
			sc.excludedAt[id] = time.Now()
			continue
		}
		if time.Since(at) < sc.lag {
			continue
		}
		for _, tg := range sc.tgs {
			_ = sc.c.acct.DeregisterTargets(tg, id)
		}
		for _, lb := range sc.clbs {
			_ = sc.c.acct.DeregisterFromClassic(lb, id)
		}
	}
}

// lbSetup is a cluster whose "nodes" group serves a Service through an NLB
// target group (instance targets, externalTrafficPolicy Cluster) and a
// classic load balancer, both with a short draining time.
func lbSetup(t *testing.T) (*cluster, awsfake.TargetGroup, string) {
	t.Helper()
	c := rollCluster(t, 3)
	sub := c.acct.Subnets()[0].ID
	nlb, err := c.acct.AddLoadBalancer(awsfake.LoadBalancerSpec{Name: "k8s-shop-web", Type: "network", Subnets: []string{sub}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := c.acct.AddTargetGroup(awsfake.TargetGroup{Name: "k8s-shop-web-80", Protocol: "TCP", Port: 31080,
		LoadBalancerARNs: []string{nlb.ARN}, DeregistrationDelay: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	clb, err := c.acct.AddClassicLoadBalancer("a1b2c3shopapi", []string{sub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.acct.SetConnectionDraining(clb.Name, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return c, tg, clb.Name
}

// lbProbe is the Service reached through its load balancer: each request
// goes where the load balancer sends a new connection, and fails (502) when
// that instance is shutting down or gone.
func lbProbe(t *testing.T, acct *awsfake.Account, lb string) gate.Probe {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		id, alive, ok := acct.Route(lb)
		if !ok || !alive {
			http.Error(w, "no answer from "+id, http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	return gate.Probe{Name: "shop-web-via-nlb", URL: srv.URL, ExpectStatus: []int{http.StatusOK}, Timeout: gate.Duration(2 * time.Second)}
}

func lbConfig(c *cluster, out *bytes.Buffer) Config {
	cfg := c.rollConfig(&script{}, out)
	cfg.Deregistration = DeregistrationOptions{Timeout: 5 * time.Second, Poll: 5 * time.Millisecond, Wait: time.Millisecond}
	return cfg
}

// Before, a 3-node roll terminated each instance while the
// Service's NLB and CLB still sent it connections (a cordon does not take a
// node out of a load balancer, and the roll set no exclusion label). Now
// each node is labelled node.kubernetes.io/exclude-from-external-load-balancers
// with its cordon, and its instance ends only once the targets drained.
func TestRunTakesNodesOutOfLoadBalancers(t *testing.T) {
	for _, surge := range []bool{false, true} {
		t.Run("surge="+strconv.FormatBool(surge), func(t *testing.T) { testTakesNodesOut(t, surge) })
	}
}

func testTakesNodesOut(t *testing.T, surge bool) {
	c, tg, clb := lbSetup(t)
	c.startServiceController(20*time.Millisecond, []string{tg.ARN}, []string{clb})
	old := c.groupNodes("nodes")
	deadline := time.Now().Add(2 * time.Second)
	for len(c.acct.Targets(tg.ARN)) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var labelled []string
	var mu sync.Mutex
	c.acct.OnTerminate(func(inst awsfake.Instance) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range c.nodes() {
			if kube.InstanceID(n.Spec.ProviderID) == inst.ID && !included(n.Labels) {
				labelled = append(labelled, n.Name)
			}
		}
		// What the cluster's own hook does (OnTerminate replaces it).
		_ = c.client.CoreV1().Nodes().Delete(context.Background(), nodeName(inst), metav1.DeleteOptions{})
	})
	var out bytes.Buffer
	cfg := lbConfig(c, &out)
	cfg.Surge = surge
	cfg.Downtime = &DowntimeOptions{Probes: []gate.Probe{lbProbe(t, c.acct, tg.ARN)}, Interval: 5 * time.Millisecond}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if cuts := c.acct.TrafficCuts(); len(cuts) > 0 {
		t.Errorf("%d instance(s) terminated while a load balancer still sent them connections: %+v\n%s", len(cuts), cuts, out.String())
	}
	mu.Lock()
	if len(labelled) != 3 {
		t.Errorf("nodes labelled %s when their instance was terminated: %v of %v", LabelExcludeFromLoadBalancers, labelled, old)
	}
	mu.Unlock()
	for _, n := range res.Nodes {
		// The label went on with the cordon, so the draining overlaps the
		// drain: the wait is what is left of it.
		if len(n.LoadBalancers) != 2 || n.Deregister <= 0 {
			t.Errorf("node %s: waited %s for %v; want both load balancers", n.Node, n.Deregister, n.LoadBalancers)
		}
	}
	for _, n := range c.nodes() {
		if !included(n.Labels) || n.Annotations[AnnotationExcluded] != "" {
			t.Errorf("node %s left excluded from load balancers: %v %v", n.Name, n.Labels, n.Annotations)
		}
	}
	// The probe through the load balancer is what sees it (the endpoint
	// sampler does not: no EndpointSlice changes when an NLB sends a
	// connection to a terminated instance).
	if d := res.Downtime; d == nil || len(d.Probes) != 1 || d.Probes[0].Requests == 0 || d.Probes[0].Failed+d.Probes[0].Timeouts != 0 {
		t.Errorf("probe through the load balancer: %+v", d)
	}
	if ts := c.acct.Targets(tg.ARN); len(ts) != 4 {
		t.Errorf("target group after the roll: %+v, want the 3 replacements and the spare group's node", ts)
	}
}

// Without the exclusion the same roll cuts traffic, and the probe through
// the load balancer counts it: the fake and the probe can see the fault.
func TestLoadBalancerProbeSeesATerminationUnderTraffic(t *testing.T) {
	c, tg, clb := lbSetup(t)
	c.startServiceController(time.Hour, []string{tg.ARN}, []string{clb}) // never deregisters
	deadline := time.Now().Add(2 * time.Second)
	for len(c.acct.Targets(tg.ARN)) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	probe := lbProbe(t, c.acct, tg.ARN)
	name := c.groupNodes("nodes")[0]
	id := kube.InstanceID(c.node(name).Spec.ProviderID)
	if err := c.acct.TerminateInstance(id); err != nil {
		t.Fatal(err)
	}
	cuts := c.acct.TrafficCuts()
	if len(cuts) != 2 || cuts[0].Instance != id {
		t.Errorf("cuts %+v; want the NLB's and the CLB's", cuts)
	}
	failed := 0
	for range 6 {
		resp, err := http.Get(probe.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d of 6 requests through the load balancer failed, want 2 (round robin over 3 targets, one terminated)", failed)
	}
}

// A deregistration that does not come (a target group nothing deregisters
// the node from) stops the roll before any termination and puts the node
// back: uncordoned, the exclusion label removed.
func TestRunPutsNodeBackWhenDeregistrationDoesNotCome(t *testing.T) {
	c, tg, clb := lbSetup(t)
	c.startServiceController(time.Hour, []string{tg.ARN}, []string{clb})
	deadline := time.Now().Add(2 * time.Second)
	for len(c.acct.Targets(tg.ARN)) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var out bytes.Buffer
	cfg := lbConfig(c, &out)
	cfg.Deregistration.Timeout = 100 * time.Millisecond
	_, err := Run(context.Background(), cfg)
	var de *DeregistrationError
	if !errors.As(err, &de) || len(de.Targets) != 2 {
		t.Fatalf("err %v, want a DeregistrationError naming both load balancers\n%s", err, out.String())
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 0 {
		t.Errorf("%d terminations", n)
	}
	for _, n := range c.nodes() {
		if n.Spec.Unschedulable || !included(n.Labels) || n.Annotations[AnnotationExcluded] != "" {
			t.Errorf("node %s left cordoned or excluded: unschedulable %v, labels %v", n.Name, n.Spec.Unschedulable, n.Labels)
		}
	}
}

// A drain that stops, and a roll interrupted while it waits for the load
// balancers, leave no node excluded; the re-run resumes and cuts nothing.
func TestRunExclusionUndoneOnStopAndResumed(t *testing.T) {
	c, tg, clb := lbSetup(t)
	sc := c.startServiceController(20*time.Millisecond, []string{tg.ARN}, []string{clb})
	deadline := time.Now().Add(2 * time.Second)
	for len(c.acct.Targets(tg.ARN)) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	first := c.groupNodes("nodes")[0]

	// A drain refused until its timeout: the node goes back.
	c.mu.Lock()
	c.refuse["shop/web-"+first] = refusal429{n: 1 << 20, pdb: "web"}
	c.mu.Unlock()
	var out bytes.Buffer
	cfg := lbConfig(c, &out)
	cfg.Drain.Timeout = 100 * time.Millisecond
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Fatalf("roll went through a drain that cannot finish\n%s", out.String())
	}
	if n := c.node(first); !included(n.Labels) || n.Spec.Unschedulable {
		t.Errorf("after the stopped drain node %s: unschedulable %v, labels %v", first, n.Spec.Unschedulable, n.Labels)
	}
	c.mu.Lock()
	delete(c.refuse, "shop/web-"+first)
	c.mu.Unlock()

	// Interrupted while waiting for the load balancers (the controller
	// paused): the node goes back into them.
	sc.halt()
	ctx, cancel := context.WithCancel(context.Background())
	var syncOut syncBuffer
	cfg = lbConfig(c, nil)
	cfg.Out = &syncOut
	go func() {
		for ctx.Err() == nil {
			if strings.Contains(syncOut.String(), "waiting until no load balancer routes") {
				cancel()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	_, err := Run(ctx, cfg)
	cancel()
	var ie *InterruptedError
	if !errors.As(err, &ie) {
		t.Fatalf("err %v, want an interruption\n%s", err, syncOut.String())
	}
	if n := c.node(first); !included(n.Labels) || n.Spec.Unschedulable {
		t.Errorf("after the interruption node %s: unschedulable %v, labels %v", first, n.Spec.Unschedulable, n.Labels)
	}
	if n := c.srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 0 {
		t.Errorf("%d terminations before the resume", n)
	}

	// Resumed with the controller back: done, nothing cut.
	c.startServiceController(20*time.Millisecond, []string{tg.ARN}, []string{clb})
	var out2 bytes.Buffer
	if _, err := Run(context.Background(), lbConfig(c, &out2)); err != nil {
		t.Fatalf("resume: %v\n%s", err, out2.String())
	}
	if !strings.Contains(out2.String(), "resumed") {
		t.Logf("resume output:\n%s", out2.String())
	}
	if cuts := c.acct.TrafficCuts(); len(cuts) > 0 {
		t.Errorf("terminated under traffic: %+v", cuts)
	}
}

// --reset puts back into the load balancers a node the roll excluded, and
// leaves alone one an operator labelled.
func TestResetRemovesTheExclusion(t *testing.T) {
	c := rollCluster(t, 2)
	names := c.groupNodes("nodes")
	ctx := context.Background()
	st := stateStore{client: c.client, now: time.Now}
	for _, name := range names {
		if err := st.join(ctx, name, "r1", 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	byHand := names[1]
	if _, err := st.patchMeta(ctx, byHand, map[string]*string{LabelExcludeFromLoadBalancers: strp("true")}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := st.cordon(ctx, c.node(name)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.node(names[0]); included(n.Labels) || n.Annotations[AnnotationExcluded] != "true" {
		t.Fatalf("cordon did not exclude %s: %v %v", names[0], n.Labels, n.Annotations)
	}
	if _, err := Run(ctx, Config{Client: c.client, Provider: c.aws, Gate: &script{}, Selection: Selection{NodeGroup: "nodes"}, Reset: true}); err != nil {
		t.Fatal(err)
	}
	if n := c.node(names[0]); !included(n.Labels) || n.Spec.Unschedulable {
		t.Errorf("after --reset %s: unschedulable %v, labels %v", names[0], n.Spec.Unschedulable, n.Labels)
	}
	if n := c.node(byHand); included(n.Labels) {
		t.Errorf("--reset removed the label an operator set on %s", byHand)
	}
}
