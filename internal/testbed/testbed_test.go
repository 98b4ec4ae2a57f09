package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestTestbed starts the whole testbed and checks that the real programs do
// what the end-to-end tests rely on.
func TestTestbed(t *testing.T) {
	began := time.Now()
	const grace = 20 * time.Second
	rules := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rules, []byte(`groups:
- name: testbed
  rules:
  - record: testbed:up:count
    expr: count(up)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := ForTest(t, Options{
		Prometheus:               true,
		RuleFiles:                []string{rules},
		NodeMonitorGracePeriod:   grace,
		NodeLeaseDurationSeconds: 20, // kwok renews every ~5s
	})
	t.Logf("testbed started in %s", since(began))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	step := time.Now()
	lap := func(what string) {
		t.Logf("%s: %s", what, since(step))
		step = time.Now()
	}

	// The admin kubeconfig works as it is (CA-verified TLS, token).
	cfg, err := clientcmd.BuildConfigFromFlags("", tb.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
		t.Fatalf("using %s: %v", tb.Kubeconfig, err)
	}

	// Scraping a job set at run time; the query is scraped by both replicas.
	queryTarget := strings.TrimPrefix(tb.ThanosQueryURL, "http://")
	if err := tb.SetScrapeTargets("thanos-query", []string{queryTarget}); err != nil {
		t.Fatal(err)
	}

	nodes := []Node{
		{Name: "node-a1", Zone: "eu-west-1a", InstanceType: "m5.xlarge", NodeGroup: "nodes-a"},
		{Name: "node-a2", Zone: "eu-west-1a", InstanceType: "m5.xlarge", NodeGroup: "nodes-a"},
		{Name: "node-b1", Zone: "eu-west-1b", InstanceType: "m5.xlarge", NodeGroup: "nodes-b"},
	}
	for _, n := range nodes {
		if err := tb.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := WaitFor(ctx, time.Minute, n.Name+" Ready", tb.NodeReady(n.Name, corev1.ConditionTrue)); err != nil {
			t.Fatal(err)
		}
	}
	lap("3 nodes Ready")
	node, err := tb.Client.CoreV1().Nodes().Get(ctx, "node-b1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "aws:///eu-west-1b/" + InstanceID("node-b1"); node.Spec.ProviderID != want {
		t.Errorf("providerID %q, want %q", node.Spec.ProviderID, want)
	}
	if got := node.Labels[DefaultNodeGroupLabel]; got != "nodes-b" {
		t.Errorf("node group label %q, want nodes-b", got)
	}
	if got := node.Status.NodeInfo.KubeletVersion; got != KubernetesVersion {
		t.Errorf("kubeletVersion %q, want %s", got, KubernetesVersion)
	}

	maxUnavailable := intstr.FromInt32(1)
	if err := tb.CreateWorkload(ctx, Workload{
		Namespace: "apps", Name: "web", Replicas: 3,
		NodeSelector:   map[string]string{"type": "kwok"},
		MaxUnavailable: &maxUnavailable,
		EmptyDir:       true,
	}); err != nil {
		t.Fatal(err)
	}
	err = WaitFor(ctx, 2*time.Minute, "3 Ready pods with IPs", func(ctx context.Context) (bool, error) {
		pods, err := tb.Client.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods.Items {
			if p.Status.PodIP != "" && p.Spec.NodeName != "" && podReady(&p) {
				ready++
			}
		}
		if ready != 3 || len(pods.Items) != 3 {
			return false, fmt.Errorf("%d pods, %d of them Ready with an IP", len(pods.Items), ready)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lap("deployment: 3 Ready pods")
	err = WaitFor(ctx, time.Minute, "PDB status", func(ctx context.Context) (bool, error) {
		pdb, err := tb.Client.PolicyV1().PodDisruptionBudgets("apps").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := pdb.Status
		if s.DisruptionsAllowed != 1 || s.CurrentHealthy != 3 || s.ExpectedPods != 3 {
			return false, fmt.Errorf("disruptionsAllowed=%d currentHealthy=%d expectedPods=%d, want 1 3 3",
				s.DisruptionsAllowed, s.CurrentHealthy, s.ExpectedPods)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lap("PDB disruptionsAllowed=1")

	// A wedged kubelet: its lease is no longer renewed.
	stopped := time.Now()
	if err := tb.StopHeartbeat(ctx, "node-a2"); err != nil {
		t.Fatal(err)
	}

	// Meanwhile: Thanos deduplicates the two replicas.
	checkDedup(ctx, t, tb, `up{job="thanos-query"}`, 1, 1)
	checkDedup(ctx, t, tb, `up{job="prometheus"}`, 2, 1)
	checkDedup(ctx, t, tb, `testbed:up:count`, 1, 3) // recorded by Options.RuleFiles
	lap("thanos dedup")

	if err := WaitFor(ctx, grace+30*time.Second, "node-a2 Ready=Unknown", tb.NodeReady("node-a2", corev1.ConditionUnknown)); err != nil {
		t.Fatal(err)
	}
	t.Logf("node-a2 Ready=Unknown %s after its heartbeat stopped (grace period %s)", since(stopped), grace)
	lease, err := tb.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node-a2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.After(stopped) {
		t.Errorf("node-a2's Lease was renewed at %v, after its heartbeat stopped at %v", lease.Spec.RenewTime, stopped)
	}
	if d := lease.Spec.LeaseDurationSeconds; d == nil || *d != 20 {
		t.Errorf("node-a2's Lease duration = %v, want kwok's 20s kept", d)
	}
	for _, n := range []string{"node-a1", "node-b1"} {
		if ok, err := tb.NodeReady(n, corev1.ConditionTrue)(ctx); !ok {
			t.Errorf("%s is no longer Ready: %v", n, err)
		}
	}
	lap("heartbeat stop")
	if err := tb.ResumeHeartbeat(ctx, "node-a2"); err != nil {
		t.Fatal(err)
	}
	if err := WaitFor(ctx, time.Minute, "node-a2 Ready again", tb.NodeReady("node-a2", corev1.ConditionTrue)); err != nil {
		t.Fatal(err)
	}
	lap("heartbeat resumed, node-a2 Ready")

	procs := tb.Processes()
	if err := tb.Stop(); err != nil {
		t.Error(err)
	}
	for _, p := range procs {
		for _, target := range []int{p.Pid(), -p.Pid()} { // the process, its group
			if err := syscall.Kill(target, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("%s (pid/pgid %d) is still there after Stop: kill 0: %v", p.Name, target, err)
			}
		}
	}
	if err := tb.Stop(); err != nil { // idempotent
		t.Error(err)
	}
	lap("stop")
	t.Logf("whole test: %s", since(began))
}

// checkDedup waits until query answers wantDedup series of value want with
// dedup=true (none of them with a replica label) and twice as many with
// dedup=false.
func checkDedup(ctx context.Context, t *testing.T, tb *Testbed, query string, wantDedup int, want float64) {
	t.Helper()
	var last string
	err := WaitFor(ctx, time.Minute, "thanos: "+query, func(ctx context.Context) (bool, error) {
		deduped, err := tb.QueryThanos(ctx, query, true)
		if err != nil {
			return false, err
		}
		raw, err := tb.QueryThanos(ctx, query, false)
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("dedup=true: %v; dedup=false: %v", describe(deduped), describe(raw))
		if len(deduped) != wantDedup || len(raw) != 2*wantDedup {
			return false, fmt.Errorf("%s; want %d and %d series", last, wantDedup, 2*wantDedup)
		}
		for _, s := range deduped {
			if _, ok := s.Metric["replica"]; ok {
				return false, fmt.Errorf("deduplicated series has a replica label: %v", s.Metric)
			}
			if s.Value != want {
				return false, fmt.Errorf("%v = %v, want %v", s.Metric, s.Value, want)
			}
		}
		replicas := map[string]int{}
		for _, s := range raw {
			replicas[s.Metric["replica"]]++
		}
		if replicas["r0"] != wantDedup || replicas["r1"] != wantDedup {
			return false, fmt.Errorf("series per replica: %v", replicas)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", query, last)
}

func describe(ss []Sample) string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprintf("{instance=%s,replica=%s}", s.Metric["instance"], s.Metric["replica"]))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestWaitFor(t *testing.T) {
	ctx := context.Background()
	n := 0
	if err := WaitFor(ctx, 5*time.Second, "three polls", func(context.Context) (bool, error) {
		n++
		return n >= 3, nil
	}); err != nil {
		t.Fatal(err)
	}
	err := WaitFor(ctx, 600*time.Millisecond, "the impossible", func(context.Context) (bool, error) {
		return false, errors.New("still not")
	})
	if err == nil || !strings.Contains(err.Error(), "the impossible") || !strings.Contains(err.Error(), "still not") {
		t.Fatalf("error %v should name what and the last error", err)
	}
}

func TestInstanceID(t *testing.T) {
	id := InstanceID("node-a1")
	if len(id) != 19 || !strings.HasPrefix(id, "i-") || id != InstanceID("node-a1") || id == InstanceID("node-a2") {
		t.Fatalf("InstanceID: %q", id)
	}
}

// TestProcessGroup checks, without the testbed's binaries, that Stop ends a
// process and its children (one process group), also one ignoring SIGTERM.
func TestProcessGroup(t *testing.T) {
	defer func(g time.Duration) { stopGrace = g }(stopGrace)
	stopGrace = time.Second
	tb := &Testbed{Dir: t.TempDir(), o: Options{Logf: t.Logf}}
	p, err := tb.StartProcess("sh", []string{"sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & echo started; wait"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.StartProcess("sh", []string{"true"}, nil); err == nil {
		t.Error("a second running process named sh was accepted")
	}
	if err := WaitFor(context.Background(), 10*time.Second, "the shell to start", func(context.Context) (bool, error) {
		lines := p.tail(10)
		return len(lines) > 0 && lines[len(lines)-1] == "started", nil
	}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := tb.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-p.Pid(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process group %d still exists: %v", p.Pid(), err)
	}
	t.Logf("stopped in %s (SIGTERM ignored, so SIGKILL after %s)", since(began), stopGrace)
	if _, err := tb.StartProcess("late", []string{"true"}, nil); err == nil {
		t.Error("StartProcess after Stop succeeded")
	}
}
