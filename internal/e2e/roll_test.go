package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// The gate's policy for the roll tests: every check of the default policy
// but the AWS ones (the exporter runs no AWS collector here).
const rollPolicy = `consecutive: 2
interval: 3s
monitoring:
  aws_max_age: 0s
  watchdog: ""  # this testbed's Prometheus loads no bundle rules, so no UpgradeGuardWatchdog
capacity:
  ips: false
  quotas: false
nodes:
  groups: false  # no upgradeguard_aws_asg_instance_info without an AWS collector: UNKNOWN otherwise
`

// Without the drain check, so that the roll's own drain meets the budgets.
const rollPolicyNoDrain = rollPolicy + `drain:
  enabled: false
`

const gateInterval = 3 * time.Second

const faultRules = `groups:
- name: rolltest
  rules:
  - alert: RollTestFault
    expr: roll_test_fault > 0
    labels:
      severity: warning
    annotations:
      summary: A fault injected by the roll test.
`

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rollRun is one run of the roll binary.
type rollRun struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

func (r *rollRun) exitCode() int {
	<-r.done
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	if r.err != nil {
		return -1
	}
	return 0
}

type rollEnv struct {
	t          *testing.T
	tb         *testbed.Testbed
	bin        string
	kubeconfig string // the roll's ServiceAccount
	aws        *awsfake.Server
	policy     string
	noDrain    string
}

func (e *rollEnv) start(ctx context.Context, policy string, args ...string) *rollRun {
	e.t.Helper()
	argv := append([]string{"roll", "--kubeconfig", e.kubeconfig, "--query.url", e.tb.ThanosQueryURL, "--policy", policy,
		"--aws.region", "eu-west-1", "--aws.endpoint-url", e.aws.URL(), "--aws.cluster-name", "testbed",
		"--drain-timeout", "3m", "--node-timeout", "3m"}, args...)
	cmd := exec.CommandContext(ctx, e.bin, argv...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+awsfake.AccessKeyFor(awsfake.DefaultAccountID),
		"AWS_SECRET_ACCESS_KEY="+awsfake.SecretKey, "AWS_EC2_METADATA_DISABLED=true")
	r := &rollRun{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	return r
}

// groupNodes returns the nodes of a node group, by name; nil when they
// cannot be listed (conditions retry, final checks see too few nodes).
func (e *rollEnv) groupNodes(ctx context.Context, group string) map[string]corev1.Node {
	l, err := e.tb.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: testbed.DefaultNodeGroupLabel + "=" + group})
	if err != nil {
		return nil
	}
	out := map[string]corev1.Node{}
	for _, n := range l.Items {
		out[n.Name] = n
	}
	return out
}

// tail is the end of a run's output, for errors.
func (r *rollRun) tail() string {
	s := r.out.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

func readyPods(ctx context.Context, e *rollEnv, ns, app string) ([]corev1.Pod, error) {
	l, err := e.tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// rollKubeconfig applies deploy/roll/rbac.yaml and returns a kubeconfig
// with a token of its ServiceAccount: the roll runs with exactly that RBAC.
func rollKubeconfig(ctx context.Context, t *testing.T, tb *testbed.Testbed) string {
	t.Helper()
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "upgradeguard"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "roll", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("deploy/roll/rbac.yaml: %v", err)
		}
		if err := createTyped(ctx, tb, obj); err != nil {
			t.Fatalf("applying deploy/roll/rbac.yaml: %v", err)
		}
	}
	tok, err := tb.Client.CoreV1().ServiceAccounts("upgradeguard").CreateToken(ctx, "upgradeguard-roll",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(7200))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(tb.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Token = tok.Status.Token
	}
	path := filepath.Join(t.TempDir(), "roll.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func createTyped(ctx context.Context, tb *testbed.Testbed, obj runtime.Object) error {
	c := tb.Client
	opts := metav1.CreateOptions{}
	var err error
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		_, err = c.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.ClusterRole:
		_, err = c.RbacV1().ClusterRoles().Create(ctx, o, opts)
	case *rbacv1.ClusterRoleBinding:
		_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
	case *rbacv1.Role:
		_, err = c.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
	case *rbacv1.RoleBinding:
		_, err = c.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
	default:
		err = fmt.Errorf("unexpected object %T", obj)
	}
	return err
}

func TestRollNodeGroups(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "rolltest.rules.yml")
	if err := os.WriteFile(rules, []byte(faultRules), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{rules}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()

	// The fake AWS account: two zones, two groups whose instances are kwok
	// nodes; a replacement instance comes up 2s after a termination.
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	acct := srv.Account()
	acct.SetTiming(awsfake.Timing{LaunchDelay: 2 * time.Second})
	backed := tb.BackInstances(ctx, acct, nil)
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	var subnets []string
	for i, zone := range []string{"eu-west-1a", "eu-west-1b"} {
		s, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: fmt.Sprintf("10.1.%d.0/24", i), AZ: zone, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		subnets = append(subnets, s.ID)
	}
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int32{"nodes-blue": 8, "nodes-green": 3} {
		if _, err := acct.AddASG(awsfake.ASGSpec{Name: name, LaunchTemplate: lt.ID, Min: 1, Max: size + 1, Desired: size, Subnets: subnets, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}

	e := &rollEnv{t: t, tb: tb, bin: bin, aws: srv}
	e.kubeconfig = rollKubeconfig(ctx, t, tb)
	dir := t.TempDir()
	e.policy, e.noDrain = filepath.Join(dir, "policy.yml"), filepath.Join(dir, "policy-nodrain.yml")
	for path, body := range map[string]string{e.policy: rollPolicy, e.noDrain: rollPolicyNoDrain} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Deployments under PDBs on the blue nodes.
	blue := map[string]string{testbed.DefaultNodeGroupLabel: "nodes-blue"}
	one, half, two := intstr.FromInt32(1), intstr.FromString("50%"), intstr.FromInt32(2)
	type budgeted struct {
		w   testbed.Workload
		min int // ready pods the budget keeps
	}
	workloads := []budgeted{
		{testbed.Workload{Namespace: "shop", Name: "web", Replicas: 8, MaxUnavailable: &one, NodeSelector: blue}, 7},
		{testbed.Workload{Namespace: "shop", Name: "api", Replicas: 4, MinAvailable: &half, NodeSelector: blue}, 2},
		{testbed.Workload{Namespace: "data", Name: "cache", Replicas: 3, MinAvailable: &two, NodeSelector: blue}, 2},
	}
	for _, w := range workloads {
		if err := tb.CreateWorkload(ctx, w.w); err != nil {
			t.Fatal(err)
		}
	}

	// The exporter, scraped by both Prometheus replicas; and the fault
	// target whose value fires RollTestFault.
	startExporter(t, tb, bin, "")
	fault, stopFault, err := tb.ServeGauge("rolltest", "roll_test_fault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopFault)
	err = testbed.WaitFor(ctx, 4*time.Minute, "every workload ready and the exporter's drain series of all 11 nodes in Thanos", func(ctx context.Context) (bool, error) {
		for _, w := range workloads {
			pods, err := readyPods(ctx, e, w.w.Namespace, w.w.Name)
			if err != nil || len(pods) != int(w.w.Replicas) {
				return false, fmt.Errorf("%s: %d ready pods (%v)", w.w.Name, len(pods), err)
			}
		}
		r, err := tb.QueryThanos(ctx, `upgradeguard_node_drainable`, true)
		if err != nil {
			return false, err
		}
		f, err := tb.QueryThanos(ctx, `roll_test_fault`, true)
		if err != nil {
			return false, err
		}
		return len(r) == 11 && len(f) == 1, fmt.Errorf("%d nodes with drain series, %d fault series", len(r), len(f))
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("roll 8 nodes under PDBs, pausing on an alert", func(t *testing.T) {
		e.t = t
		old := e.groupNodes(ctx, "nodes-blue")
		if len(old) != 8 {
			t.Fatalf("%d blue nodes", len(old))
		}
		// Sample every budget's ready pods (and the PDB status) throughout.
		var smu sync.Mutex
		minReady, minHealthy := map[string]int{}, map[string]int32{}
		cordoned := map[string]time.Time{}
		sctx, stopSampling := context.WithCancel(ctx)
		var sampling sync.WaitGroup
		sampling.Go(func() {
			for sctx.Err() == nil {
				for _, w := range workloads {
					pods, err := readyPods(sctx, e, w.w.Namespace, w.w.Name)
					if err != nil {
						continue
					}
					pdb, err := tb.Client.PolicyV1().PodDisruptionBudgets(w.w.Namespace).Get(sctx, w.w.Name, metav1.GetOptions{})
					smu.Lock()
					if v, ok := minReady[w.w.Name]; !ok || len(pods) < v {
						minReady[w.w.Name] = len(pods)
					}
					if err == nil {
						if v, ok := minHealthy[w.w.Name]; !ok || pdb.Status.CurrentHealthy < v {
							minHealthy[w.w.Name] = pdb.Status.CurrentHealthy
						}
					}
					smu.Unlock()
				}
				for name, n := range e.groupNodes(sctx, "nodes-blue") {
					smu.Lock()
					if _, seen := cordoned[name]; !seen && n.Spec.Unschedulable {
						cordoned[name] = time.Now()
					}
					smu.Unlock()
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
		metricsAddr := freeAddr(t)
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-blue", "--gate-timeout", "5m", "--metrics-address", metricsAddr)

		// Once two nodes are replaced, make an alert fire.
		err := testbed.WaitFor(ctx, 5*time.Minute, "two blue nodes replaced", func(ctx context.Context) (bool, error) {
			n := 0
			for name := range e.groupNodes(ctx, "nodes-blue") {
				if _, isOld := old[name]; !isOld {
					n++
				}
			}
			select {
			case <-run.done:
				return false, fmt.Errorf("the roll ended: %s", run.out.String())
			default:
			}
			return n >= 2, fmt.Errorf("%d replacements", n)
		})
		if err != nil {
			_ = run.cmd.Process.Kill()
			t.Fatalf("%v\n%s", err, run.tail())
		}
		fault.Store(1)
		var fired time.Time
		err = testbed.WaitFor(ctx, time.Minute, "RollTestFault firing in Thanos", func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, `ALERTS{alertname="RollTestFault",alertstate="firing"}`, true)
			return err == nil && len(r) == 1, err
		})
		if err != nil {
			t.Fatal(err)
		}
		fired = time.Now()
		// Hold the fault for several gate intervals: no node may start after
		// one interval plus one evaluation (plus the sampling's slack).
		deadline := fired.Add(gateInterval + 3*time.Second + 2*time.Second)
		var pausedSeen bool
		for time.Since(fired) < 8*gateInterval {
			if mfs, err := scrape.Get(ctx, "http://"+metricsAddr+"/metrics"); err == nil {
				if v, ok := mfs.Value("upgradeguard_roll_paused", nil); ok && v == 1 {
					pausedSeen = true
				}
				if v, _ := mfs.Value("upgradeguard_roll_nodes_planned", nil); v != 8 {
					t.Errorf("upgradeguard_roll_nodes_planned = %v, want 8", v)
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		smu.Lock()
		var late []string
		for name, at := range cordoned {
			if at.After(deadline) {
				late = append(late, fmt.Sprintf("%s cordoned %s after the alert fired", name, at.Sub(fired).Round(100*time.Millisecond)))
			}
		}
		started := len(cordoned)
		smu.Unlock()
		if len(late) > 0 {
			t.Errorf("the roll did not pause within one gate interval plus one evaluation: %v", late)
		}
		if !pausedSeen {
			t.Error("upgradeguard_roll_paused never 1 while the alert fired")
		}
		if !strings.Contains(run.out.String(), "gate WAIT, roll paused: alerts FAIL") || !strings.Contains(run.out.String(), "RollTestFault") {
			t.Errorf("the roll did not say why it paused:\n%s", run.out.String())
		}
		t.Logf("alert fired %s; %d nodes started by then; paused", fired.Format("15:04:05.000"), started)

		// Resolve it: the roll resumes and finishes.
		fault.Store(0)
		resolved := time.Now()
		select {
		case <-run.done:
		case <-time.After(10 * time.Minute):
			t.Fatalf("the roll did not finish:\n%s", run.out.String())
		}
		stopSampling()
		sampling.Wait()
		if code := run.exitCode(); code != 0 {
			t.Fatalf("roll exited %d:\n%s", code, run.out.String())
		}
		out := run.out.String()
		t.Logf("roll output:\n%s", out)
		smu.Lock()
		resumedAt := time.Time{}
		for _, at := range cordoned {
			if at.After(resolved) && (resumedAt.IsZero() || at.Before(resumedAt)) {
				resumedAt = at
			}
		}
		smu.Unlock()
		if resumedAt.IsZero() && started < 8 {
			t.Error("no node started after the alert resolved")
		} else if !resumedAt.IsZero() {
			t.Logf("resumed: next node cordoned %s after the fault was cleared (alert resolution, then 2 passing evaluations)", resumedAt.Sub(resolved).Round(100*time.Millisecond))
		}

		// No budget was ever violated.
		for _, w := range workloads {
			if minReady[w.w.Name] < w.min {
				t.Errorf("%s: %d ready pods at worst, its PDB keeps %d", w.w.Name, minReady[w.w.Name], w.min)
			}
			if int(minHealthy[w.w.Name]) < w.min {
				t.Errorf("%s: PDB currentHealthy %d at worst, desired %d", w.w.Name, minHealthy[w.w.Name], w.min)
			}
			t.Logf("%s: at least %d of %d pods ready throughout (PDB keeps %d)", w.w.Name, minReady[w.w.Name], w.w.Replicas, w.min)
		}
		// Every old node is gone, every workload runs on new nodes.
		now := e.groupNodes(ctx, "nodes-blue")
		if len(now) != 8 {
			t.Errorf("%d blue nodes after the roll, want 8", len(now))
		}
		for name := range now {
			if _, isOld := old[name]; isOld {
				t.Errorf("old node %s still there", name)
			}
		}
		err = testbed.WaitFor(ctx, time.Minute, "every workload's pods ready on new nodes", func(ctx context.Context) (bool, error) {
			for _, w := range workloads {
				pods, err := readyPods(ctx, e, w.w.Namespace, w.w.Name)
				if err != nil {
					return false, err
				}
				if len(pods) != int(w.w.Replicas) {
					return false, fmt.Errorf("%s: %d of %d ready", w.w.Name, len(pods), w.w.Replicas)
				}
				for _, p := range pods {
					if _, isOld := old[p.Spec.NodeName]; isOld {
						return false, fmt.Errorf("%s on old node %s", p.Name, p.Spec.NodeName)
					}
				}
			}
			return true, nil
		})
		if err != nil {
			t.Error(err)
		}
		// The audit trail: Events on the old nodes for every step.
		events, err := tb.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "source=" + "upgradeguard-roll"})
		if err == nil && len(events.Items) == 0 {
			events, err = tb.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]map[string]bool{}
		for _, ev := range events.Items {
			if reasons[ev.InvolvedObject.Name] == nil {
				reasons[ev.InvolvedObject.Name] = map[string]bool{}
			}
			reasons[ev.InvolvedObject.Name][ev.Reason] = true
		}
		for name := range old {
			for _, r := range []string{roll.ReasonPlanned, roll.ReasonGate, roll.ReasonCordoned, roll.ReasonDraining, roll.ReasonDrained, roll.ReasonTerminating, roll.ReasonReplaced} {
				if !reasons[name][r] {
					t.Errorf("no %s Event on %s", r, name)
				}
			}
		}
		reportGateOverhead(t, out)
		// Are new nodes' Ready transitions counted? (Why the policy turns the
		// transitions window off.)
		if r, err := tb.QueryThanos(ctx, `upgradeguard_node_ready_transitions_total > 0`, true); err == nil {
			t.Logf("nodes with Ready transitions counted by the exporter after the roll: %d (a new node's first Ready may count)", len(r))
		}
	})

	greens := func() []string {
		var out []string
		for name := range e.groupNodes(ctx, "nodes-green") {
			out = append(out, name)
		}
		slices.Sort(out)
		return out
	}

	t.Run("a PDB with maxUnavailable 0 stops the roll, terminating nothing", func(t *testing.T) {
		e.t = t
		target := greens()[0]
		zero := intstr.FromInt32(0)
		if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "payments", Name: "ledger", Replicas: 2, MaxUnavailable: &zero,
			NodeSelector: map[string]string{corev1.LabelHostname: target}}); err != nil {
			t.Fatal(err)
		}
		err := testbed.WaitFor(ctx, 2*time.Minute, "ledger ready and its PDB computed, seen by the gate", func(ctx context.Context) (bool, error) {
			pods, err := readyPods(ctx, e, "payments", "ledger")
			if err != nil || len(pods) != 2 {
				return false, fmt.Errorf("%d ledger pods ready", len(pods))
			}
			r, err := tb.QueryThanos(ctx, fmt.Sprintf(`upgradeguard_node_drain_blocked_pods{node=%q, pdb="ledger"}`, target), true)
			return err == nil && len(r) == 1, fmt.Errorf("blocked series: %v, %v", r, err)
		})
		if err != nil {
			t.Fatal(err)
		}
		terminations := srv.Calls("TerminateInstanceInAutoScalingGroup")
		sel := corev1.LabelHostname + "=" + target

		// With the gate's drain check: the gate never says GO for it.
		run := e.start(ctx, e.policy, "--nodegroup", "nodes-green", "--selector", sel, "--gate-timeout", "15s")
		if code := run.exitCode(); code != 3 {
			t.Errorf("exit %d, want 3 (stopped by the gate):\n%s", code, run.out.String())
		}
		if out := run.out.String(); !strings.Contains(out, "payments/ledger") || !strings.Contains(out, "roll stopped before node "+target) {
			t.Errorf("the stop does not name the PDB:\n%s", out)
		}
		// Without it, the drain meets the budget and stops at once.
		began := time.Now()
		run = e.start(ctx, e.noDrain, "--nodegroup", "nodes-green", "--selector", sel, "--gate-timeout", "2m")
		if code := run.exitCode(); code != 4 {
			t.Errorf("exit %d, want 4 (drain blocked):\n%s", code, run.out.String())
		}
		out := run.out.String()
		if !strings.Contains(out, "PodDisruptionBudget payments/ledger has maxUnavailable 0") {
			t.Errorf("the drain's failure does not name the PDB:\n%s", out)
		}
		t.Logf("drain refused by payments/ledger; the roll ended %s after its start:\n%s", time.Since(began).Round(100*time.Millisecond), out)
		if n := srv.Calls("TerminateInstanceInAutoScalingGroup"); n != terminations {
			t.Errorf("%d instances terminated", n-terminations)
		}
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, target, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable {
			t.Error("the node stays cordoned after the drain stopped")
		}
		if pods, _ := readyPods(ctx, e, "payments", "ledger"); len(pods) != 2 {
			t.Errorf("%d ledger pods ready after the stop, want 2", len(pods))
		}
		// Clean up for the next test: the ledger and the roll state.
		_ = tb.Client.AppsV1().Deployments("payments").Delete(ctx, "ledger", metav1.DeleteOptions{})
		_ = tb.Client.PolicyV1().PodDisruptionBudgets("payments").Delete(ctx, "ledger", metav1.DeleteOptions{})
		if code := e.start(ctx, e.policy, "--nodegroup", "nodes-green", "--reset").exitCode(); code != 0 {
			t.Errorf("--reset exited %d", code)
		}
	})

	t.Run("interrupted mid-drain, the re-run completes with nothing lost", func(t *testing.T) {
		e.t = t
		green := map[string]string{testbed.DefaultNodeGroupLabel: "nodes-green"}
		two := intstr.FromInt32(2)
		// sticky's budget refuses every eviction until it is relaxed.
		ws := []testbed.Workload{
			{Namespace: "batch", Name: "sticky", Replicas: 2, MinAvailable: &two, NodeSelector: green},
			{Namespace: "batch", Name: "worker", Replicas: 3, MaxUnavailable: &one, NodeSelector: green},
		}
		for _, w := range ws {
			if err := tb.CreateWorkload(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		err := testbed.WaitFor(ctx, 2*time.Minute, "sticky and worker ready", func(ctx context.Context) (bool, error) {
			for _, w := range ws {
				pods, err := readyPods(ctx, e, w.Namespace, w.Name)
				if err != nil || len(pods) != int(w.Replicas) {
					return false, fmt.Errorf("%s: %d ready", w.Name, len(pods))
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		old := greens()
		run := e.start(ctx, e.noDrain, "--nodegroup", "nodes-green", "--gate-timeout", "5m", "--order", "name")
		// Wait for a node stuck in its drain, then SIGINT.
		var stuck string
		err = testbed.WaitFor(ctx, 5*time.Minute, "a green node draining for 3s", func(ctx context.Context) (bool, error) {
			for name, n := range e.groupNodes(ctx, "nodes-green") {
				if n.Annotations[roll.AnnotationStep] != string(roll.StepDraining) {
					continue
				}
				at, err := time.Parse(time.RFC3339, n.Annotations[roll.AnnotationStepTime])
				if err == nil && time.Since(at) > 3*time.Second {
					stuck = name
					return true, nil
				}
			}
			return false, errors.New("none")
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, run.out.String())
		}
		terminations := srv.Calls("TerminateInstanceInAutoScalingGroup")
		if err := run.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := run.exitCode(); code != 130 {
			t.Errorf("interrupted roll exited %d, want 130:\n%s", code, run.out.String())
		}
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, stuck, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("node %s: %v", stuck, err)
		}
		if n.Spec.Unschedulable || n.Annotations[roll.AnnotationStep] != string(roll.StepPending) {
			t.Errorf("after SIGINT %s: unschedulable=%v step=%q; want uncordoned, pending", stuck, n.Spec.Unschedulable, n.Annotations[roll.AnnotationStep])
		}
		if srv.Calls("TerminateInstanceInAutoScalingGroup") != terminations {
			t.Error("an instance was terminated after the interruption")
		}
		t.Logf("interrupted while draining %s:\n%s", stuck, run.out.String())

		// Relax the budget and run again: it resumes and completes.
		if _, err := tb.Client.PolicyV1().PodDisruptionBudgets("batch").Patch(ctx, "sticky", types.MergePatchType,
			[]byte(`{"spec":{"minAvailable":1}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		run = e.start(ctx, e.noDrain, "--nodegroup", "nodes-green", "--gate-timeout", "5m")
		if code := run.exitCode(); code != 0 {
			t.Fatalf("re-run exited %d:\n%s", code, run.out.String())
		}
		out := run.out.String()
		if !strings.Contains(out, "resuming roll") {
			t.Errorf("the re-run did not resume the roll:\n%s", out)
		}
		t.Logf("re-run:\n%s", out)
		now := greens()
		for _, name := range old {
			if slices.Contains(now, name) {
				t.Errorf("old green node %s still there", name)
			}
		}
		if len(now) != 3 {
			t.Errorf("%d green nodes, want 3", len(now))
		}
		err = testbed.WaitFor(ctx, time.Minute, "every pod of sticky and worker ready on new nodes", func(ctx context.Context) (bool, error) {
			for _, w := range ws {
				pods, err := readyPods(ctx, e, w.Namespace, w.Name)
				if err != nil || len(pods) != int(w.Replicas) {
					return false, fmt.Errorf("%s: %d of %d ready", w.Name, len(pods), w.Replicas)
				}
				for _, p := range pods {
					if slices.Contains(old, p.Spec.NodeName) {
						return false, fmt.Errorf("%s on old node %s", p.Name, p.Spec.NodeName)
					}
				}
			}
			return true, nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	// Hazards: dead nodes, AZ rebalancing, failed launches, the canary.
	h := &hazards{e: e, acct: acct, subnets: subnets, lt: lt.ID, tags: tags, fault: fault}
	h.run(ctx, t)
	h.runWarmPool(ctx, t) // warm pool refills that fail
	if err := backed.Err(); err != nil {
		t.Error(err)
	}
}

var gateLine = regexp.MustCompile(`gate GO after ([0-9.]+m?s|[0-9]+m[0-9.]+s) \((\d+) evaluations\)`)

// reportGateOverhead logs the time the gate took per node, from the roll's
// progress lines.
func reportGateOverhead(t *testing.T, out string) {
	t.Helper()
	var ds []time.Duration
	evals := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "]") { // per-node lines only
			continue
		}
		m := gateLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d, err := time.ParseDuration(m[1])
		if err != nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		ds = append(ds, d)
		evals += n
	}
	if len(ds) == 0 {
		t.Error("no per-node gate lines in the roll's output")
		return
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	t.Logf("gate overhead per node (%d nodes, %d evaluations, interval %s, 2 consecutive): median %s, min %s, max %s (the max includes the alert's pause), mean %s",
		len(ds), evals, gateInterval, ds[len(ds)/2], ds[0], ds[len(ds)-1], sum/time.Duration(len(ds)))
}
