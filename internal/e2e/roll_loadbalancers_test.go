package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/roll"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestRollTakesNodesOutOfLoadBalancers: a 3-node roll of a
// group behind a Service's NLB target group (instance targets) and a
// classic load balancer, the binary with the roll's own RBAC
// (deploy/roll/rbac.yaml) and IAM calls against the fake AWS. The test plays
// the cloud provider's service controller (k8s.io/cloud-provider
// controllers/service/controller.go: nodes labelled
// node.kubernetes.io/exclude-from-external-load-balancers are deregistered,
// the others registered; a cordon changes nothing). Before the fix each
// instance was terminated while both load balancers still sent it
// connections and the probe through the NLB failed; now no termination
// happens under their traffic, the probe through the load balancer never
// fails, and no node is left labelled.
func TestRollTakesNodesOutOfLoadBalancers(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	acct := srv.Account()
	acct.SetTiming(awsfake.Timing{LaunchDelay: 2 * time.Second})
	backed := tb.BackInstances(ctx, acct, nil)
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	sub, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.1.0.0/24", AZ: "eu-west-1a", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.AddASG(awsfake.ASGSpec{Name: "nodes-lb", LaunchTemplate: lt.ID, Min: 1, Max: 4, Desired: 3, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}
	nlb, err := acct.AddLoadBalancer(awsfake.LoadBalancerSpec{Name: "k8s-shop-web", Type: "network", Subnets: []string{sub.ID}})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := acct.AddTargetGroup(awsfake.TargetGroup{Name: "k8s-shop-web-80", Protocol: "TCP", Port: 31080,
		LoadBalancerARNs: []string{nlb.ARN}, DeregistrationDelay: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clb, err := acct.AddClassicLoadBalancer("a1b2c3shopapi", []string{sub.ID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := acct.SetConnectionDraining(clb.Name, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	// The service controller: every 500ms, nodes the label excludes are
	// deregistered (after a 2s lag), the others registered.
	var excludedMu sync.Mutex
	excludedAt := map[string]time.Time{}
	scCtx, scStop := context.WithCancel(ctx)
	defer scStop()
	go func() {
		for scCtx.Err() == nil {
			l, err := tb.Client.CoreV1().Nodes().List(scCtx, metav1.ListOptions{LabelSelector: testbed.DefaultNodeGroupLabel + "=nodes-lb"})
			if err == nil {
				for _, n := range l.Items {
					id := kube.InstanceID(n.Spec.ProviderID)
					if id == "" {
						continue
					}
					excludedMu.Lock()
					if lbIncluded(n) {
						delete(excludedAt, id)
						excludedMu.Unlock()
						registered := false
						for _, h := range acct.Targets(tg.ARN) {
							registered = registered || h.ID == id && h.State == "healthy"
						}
						if !registered {
							_ = acct.RegisterTargets(tg.ARN, id)
						}
						_ = acct.RegisterWithClassic(clb.Name, id)
						continue
					}
					at, seen := excludedAt[id]
					if !seen {
						excludedAt[id] = time.Now()
					}
					excludedMu.Unlock()
					if seen && time.Since(at) >= 2*time.Second {
						_ = acct.DeregisterTargets(tg.ARN, id)
						_ = acct.DeregisterFromClassic(clb.Name, id)
					}
				}
			}
			select {
			case <-scCtx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	err = testbed.WaitFor(ctx, time.Minute, "the 3 nodes registered in the target group", func(context.Context) (bool, error) {
		n := len(acct.Targets(tg.ARN))
		return n == 3, fmt.Errorf("%d targets", n)
	})
	if err != nil {
		t.Fatal(err)
	}

	// The Service reached through its NLB: each request goes where the load
	// balancer sends a new connection.
	viaNLB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		id, alive, ok := acct.Route(tg.ARN)
		if !ok || !alive {
			http.Error(w, "no answer from "+id, http.StatusBadGateway)
		}
	}))
	defer viaNLB.Close()
	e := &rollEnv{t: t, tb: tb, bin: bin, aws: srv}
	e.kubeconfig = rollKubeconfig(ctx, t, tb)
	dir := t.TempDir()
	e.policy = filepath.Join(dir, "policy.yml")
	if err := os.WriteFile(e.policy, []byte(rollPolicy+fmt.Sprintf("probes:\n- name: shop-via-nlb\n  url: %s\n", viaNLB.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	startExporter(t, tb, bin, "")

	file := filepath.Join(dir, "report.json")
	run := e.start(ctx, e.policy, "--nodegroup", "nodes-lb", "--gate-timeout", "5m", "--report", file, "--sample-interval", "1s",
		"--lb-deregistration-timeout", "3m")
	if code := run.exitCode(); code != 0 {
		t.Fatalf("roll exited %d:\n%s", code, run.tail())
	}
	t.Logf("roll output:\n%s", run.tail())
	if cuts := acct.TrafficCuts(); len(cuts) > 0 {
		t.Errorf("%d termination(s) while a load balancer still sent the instance connections: %+v", len(cuts), cuts)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var r roll.DowntimeReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Probes) != 1 || r.Probes[0].Requests == 0 || r.Probes[0].Failed+r.Probes[0].Timeouts != 0 {
		t.Errorf("probe through the NLB %+v; want requests, none failed", r.Probes)
	}
	if len(r.Nodes) != 3 {
		t.Errorf("report nodes %+v, want 3", r.Nodes)
	}
	for _, n := range r.Nodes {
		if len(n.LoadBalancers) != 2 {
			t.Errorf("node %s left %v, want the target group and the classic load balancer", n.Node, n.LoadBalancers)
		}
	}
	if !strings.Contains(run.out.String(), "out of every load balancer") {
		t.Errorf("the roll did not say when the load balancers let a node go:\n%s", run.tail())
	}
	for name, n := range e.groupNodes(ctx, "nodes-lb") {
		if !lbIncluded(n) || n.Annotations[roll.AnnotationExcluded] != "" {
			t.Errorf("node %s left excluded from load balancers: %v", name, n.Labels)
		}
	}
	if n := len(acct.Targets(tg.ARN)); n != 3 {
		t.Errorf("%d targets after the roll, want the 3 replacements", n)
	}
}

// lbIncluded is the service controller's nodeIncludedPredicate.
func lbIncluded(n corev1.Node) bool {
	v, has := n.Labels[roll.LabelExcludeFromLoadBalancers]
	if !has {
		return true
	}
	b, err := strconv.ParseBool(v)
	return err == nil && !b
}
