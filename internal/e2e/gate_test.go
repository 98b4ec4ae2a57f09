package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/alerts"
	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// gateRules: kube-prometheus' always-firing Watchdog (never blocking), and
// an alert that fires while a node of the node group "canary" exists, so the
// test can toggle it. The bundle's UpgradeGuardWatchdog comes from
// deploy/generated (watchdogRules).
const gateRules = `groups:
- name: gate-e2e
  rules:
  - alert: Watchdog
    expr: vector(1)
    labels: {severity: none}
  - alert: CanaryNodePresent
    expr: upgradeguard_node_info{nodegroup="canary"}
    labels: {severity: warning}
`

// gatePolicy is the default policy (the watchdog required, nodes set
// aside while leaving or starting) evaluated every second, with a startup
// grace short enough to watch it pass.
const gatePolicy = `
matchers: 'cluster="testbed"'
interval: 1s
nodes:
  transitions_window: 3m
  startup_grace: 60s
`

// watchdogRules returns the rule group of the bundle's always-firing
// alert, taken from deploy/generated as an operator loads it (the rest of
// the bundle would fire on this test's deliberately blocked PDB).
func watchdogRules(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "generated", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	for _, g := range file.Groups {
		rules, _ := g["rules"].([]any)
		for _, r := range rules {
			if m, ok := r.(map[string]any); ok && m["alert"] == alerts.WatchdogAlert {
				out, err := yaml.Marshal(map[string]any{"groups": []any{g}})
				if err != nil {
					t.Fatal(err)
				}
				return string(out)
			}
		}
	}
	t.Fatalf("no %s in deploy/generated/prometheus-rules.yaml", alerts.WatchdogAlert)
	return ""
}

// gateBed is the gate suites' cluster: the testbed with Prometheus
// replicas loading the gate's rules and the bundle's watchdog, a fake AWS
// account with a tagged subnet per zone and one Auto Scaling group
// ("nodes") whose 4 instances are the kwok nodes, sorted by name.
type gateBed struct {
	tb     *testbed.Testbed
	aws    *awsfake.Server
	group  awsfake.ASG
	backed *testbed.InstanceNodes
	names  []string
}

// startGateBed starts a gateBed; its context ends after timeout.
func startGateBed(t *testing.T, timeout time.Duration) (*gateBed, context.Context) {
	t.Helper()
	rules := filepath.Join(t.TempDir(), "gate-rules.yml")
	if err := os.WriteFile(rules, []byte(gateRules), 0o644); err != nil {
		t.Fatal(err)
	}
	watchdog := filepath.Join(t.TempDir(), "watchdog-rules.yml")
	if err := os.WriteFile(watchdog, []byte(watchdogRules(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A store gateway beside the sidecars, announcing both replicas' label
	// sets, as users run Thanos.
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, StoreGateway: true, RuleFiles: []string{rules, watchdog}, NodeLeaseDurationSeconds: 20})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)

	aws, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aws.Close() })
	acct := aws.Account()
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	var subnets []string
	for i, zone := range []string{"eu-west-1a", "eu-west-1b"} {
		sub, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: fmt.Sprintf("10.1.%d.0/24", i), AZ: zone, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		subnets = append(subnets, sub.ID)
	}
	backed := tb.BackInstances(ctx, acct, nil)
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	group, err := acct.AddASG(awsfake.ASGSpec{Name: "nodes", LaunchTemplate: lt.ID, Min: 4, Max: 8, Desired: 4, Subnets: subnets, Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, id := range group.Instances {
		if n, ok := backed.Node(id); ok {
			names = append(names, n)
		}
	}
	if err := backed.Err(); err != nil || len(names) != 4 {
		t.Fatalf("creating the nodes: %v (%d nodes)", err, len(names))
	}
	sort.Strings(names)
	return &gateBed{tb: tb, aws: aws, group: group, backed: backed, names: names}, ctx
}

func TestGateThroughThanos(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	gb, ctx := startGateBed(t, 15*time.Minute)
	tb, aws, group, backed, names := gb.tb, gb.aws, gb.group, gb.backed, gb.names
	blocked, free := names[0], names[1]
	for _, n := range names {
		if err := testbed.WaitFor(ctx, 2*time.Minute, n+" Ready", tb.NodeReady(n, corev1.ConditionTrue)); err != nil {
			t.Fatal(err)
		}
	}
	// A PDB that blocks every eviction from one node. Its Service is the
	// one with endpoints the availability check needs (this testbed's API
	// server keeps no default/kubernetes endpoints).
	zero := intstr.FromInt32(0)
	if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "shop", Name: "frozen", Replicas: 2, MaxUnavailable: &zero, Service: true,
		NodeSelector: map[string]string{corev1.LabelHostname: blocked}}); err != nil {
		t.Fatal(err)
	}

	// AWS data every 15 s: nodes/groups judges an instance whose node went
	// away only once the data is newer than the node's disappearance.
	startExporter(t, tb, bin, aws.URL(), "--collector.awsquota.usage-interval=15s")

	policy, err := gate.ParsePolicy([]byte(gatePolicy))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{URL: tb.ThanosQueryURL, QueryTimeout: 10 * time.Second}, policy,
		slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	evaluate := func(t *testing.T, node string) gate.Evaluation {
		t.Helper()
		e, err := g.Evaluate(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// waitVerdict waits for evaluations of node to reach want (GO: two in a
	// row, as gate.Wait asks), with cond, if any, also true of the last.
	waitVerdict := func(t *testing.T, what, node string, want gate.Verdict, timeout time.Duration, cond func(gate.Evaluation) error) gate.Evaluation {
		t.Helper()
		var last gate.Evaluation
		if want == gate.GO {
			wctx, wcancel := context.WithTimeout(ctx, timeout)
			defer wcancel()
			e, err := gate.Wait(wctx, g, node, gate.WaitOptions{Consecutive: 2, Interval: time.Second, Timeout: timeout})
			if err != nil {
				t.Fatalf("%s: no GO for node %q within %s: %v\n%s", what, node, timeout, err, table(e))
			}
			return e
		}
		err := testbed.WaitFor(ctx, timeout, what, func(context.Context) (bool, error) {
			last = evaluate(t, node)
			if last.Verdict != want {
				return false, fmt.Errorf("verdict %s: %s", last.Verdict, strings.Join(last.Reasons(), "; "))
			}
			if cond != nil {
				if err := cond(last); err != nil {
					return false, err
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, table(last))
		}
		return last
	}
	failing := func(names ...string) func(gate.Evaluation) error {
		return func(e gate.Evaluation) error {
			bad := map[string]bool{}
			for _, c := range e.Checks {
				if c.Status != gate.Pass && c.Status != gate.Skip {
					bad[c.Name] = true
				}
			}
			for _, n := range names {
				if !bad[n] {
					return fmt.Errorf("%s is not failing: %s", n, strings.Join(e.Reasons(), "; "))
				}
			}
			return nil
		}
	}

	t.Run("GO on a healthy cluster", func(t *testing.T) {
		e := waitVerdict(t, "GO on the healthy cluster", free, gate.GO, 4*time.Minute, nil)
		t.Logf("healthy evaluation:\n%s", table(e))
		// Evaluation latency and queries, over 20 evaluations.
		var durs []time.Duration
		queries := map[int]int{}
		for range 20 {
			e := evaluate(t, free)
			if e.Verdict != gate.GO {
				t.Errorf("healthy evaluation not GO: %v", e.Reasons())
			}
			durs = append(durs, e.Duration)
			queries[e.Queries]++
		}
		sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
		t.Logf("MEASURED gate evaluation through Thanos Query (2 replicas), node %s: median %s, p90 %s, max %s; requests per evaluation %v (count: evaluations)",
			free, durs[len(durs)/2], durs[len(durs)*9/10], durs[len(durs)-1], queries)
		if durs[len(durs)/2] > 5*time.Second {
			t.Errorf("median evaluation %s", durs[len(durs)/2])
		}
		// The binary agrees: gate check exits 0.
		out, err := exec.CommandContext(ctx, bin, "gate", "check", "--query.url", tb.ThanosQueryURL, "--node", free,
			"--policy", writePolicy(t, gatePolicy), "--log.level", "warn").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "verdict GO") {
			t.Errorf("upgradeguard gate check: %v\n%s", err, out)
		}
	})

	t.Run("a firing alert gives WAIT, then GO once it resolves", func(t *testing.T) {
		if err := tb.CreateNode(ctx, testbed.Node{Name: "canary-0", Zone: "eu-west-1a", InstanceType: "m5.large", NodeGroup: "canary"}); err != nil {
			t.Fatal(err)
		}
		e := waitVerdict(t, "WAIT on CanaryNodePresent", free, gate.WAIT, 2*time.Minute, failing("alerts"))
		t.Logf("with the alert: %v", e.Reasons())
		if err := tb.Client.CoreV1().Nodes().Delete(ctx, "canary-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitVerdict(t, "GO after the alert resolved", free, gate.GO, 2*time.Minute, nil)
	})

	t.Run("a PDB blocking node X gives WAIT for X and GO for another node", func(t *testing.T) {
		e := waitVerdict(t, "WAIT for the blocked node", blocked, gate.WAIT, 2*time.Minute, failing("drain/pdb"))
		if r := e.Reasons(); len(r) != 1 || !strings.Contains(r[0], "shop/frozen blocks 2 pods") {
			t.Errorf("reasons for %s: %v", blocked, r)
		}
		waitVerdict(t, "GO for another node", free, gate.GO, time.Minute, nil)
	})

	// A pod under two PDBs is refused by the Eviction API
	// (500) whatever the budgets allow: never "drains in steps".
	t.Run("pods under two PDBs: WAIT with the reason, as the Eviction API refuses them", func(t *testing.T) {
		node := names[3]
		one := intstr.FromInt32(1)
		if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "multi", Name: "web", Replicas: 2, MaxUnavailable: &one,
			NodeSelector: map[string]string{corev1.LabelHostname: node}}); err != nil {
			t.Fatal(err)
		}
		// The disruption controller recomputes only one of the PDBs that
		// select a pod when the pod changes ("matches multiple
		// PodDisruptionBudgets. Chose ... arbitrarily", getPdbForPod in
		// k8s.io/kubernetes pkg/controller/disruption/disruption.go): front is
		// created once web's pods are ready, so that its own creation
		// computes it with them.
		if err := testbed.WaitFor(ctx, 3*time.Minute, "multi/web to allow 1 disruption", func(ctx context.Context) (bool, error) {
			pdb, err := tb.Client.PolicyV1().PodDisruptionBudgets("multi").Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return pdb.Status.DisruptionsAllowed == 1, fmt.Errorf("allowed %d, healthy %d", pdb.Status.DisruptionsAllowed, pdb.Status.CurrentHealthy)
		}); err != nil {
			t.Fatal(err)
		}
		front := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Namespace: "multi", Name: "front"},
			Spec: policyv1.PodDisruptionBudgetSpec{
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				MaxUnavailable: &one,
			},
		}
		if _, err := tb.Client.PolicyV1().PodDisruptionBudgets("multi").Create(ctx, front, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Both budgets allow a disruption: the old gate said "drains in steps".
		if err := testbed.WaitFor(ctx, 3*time.Minute, "both PDBs to allow 1 disruption", func(ctx context.Context) (bool, error) {
			var state []string
			ok := true
			for _, name := range []string{"web", "front"} {
				pdb, err := tb.Client.PolicyV1().PodDisruptionBudgets("multi").Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				st := pdb.Status
				state = append(state, fmt.Sprintf("%s: allowed %d, healthy %d of %d desired, expected %d, observed generation %d of %d",
					name, st.DisruptionsAllowed, st.CurrentHealthy, st.DesiredHealthy, st.ExpectedPods, st.ObservedGeneration, pdb.Generation))
				ok = ok && st.DisruptionsAllowed == 1
			}
			if ok {
				return true, nil
			}
			pods, err := tb.Client.CoreV1().Pods("multi").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				state = append(state, fmt.Sprintf("pod %s on %q %s", p.Name, p.Spec.NodeName, p.Status.Phase))
			}
			return false, errors.New(strings.Join(state, "; "))
		}); err != nil {
			t.Fatal(err)
		}
		e := waitVerdict(t, "WAIT for two PDBs", node, gate.WAIT, 2*time.Minute, func(e gate.Evaluation) error {
			for _, c := range e.Checks {
				if c.Name == "drain/pdb" && c.Status == gate.Fail && strings.Contains(c.Why, "multi/web blocks 2 pods that more than one PodDisruptionBudget selects") &&
					strings.Contains(c.Why, "multi/front blocks 2 pods") {
					return nil
				}
			}
			return fmt.Errorf("drain/pdb does not name both PDBs and the reason: %v", e.Reasons())
		})
		t.Logf("two PDBs: %v", e.Reasons())
		// The real Eviction API agrees: 500, "more than one PodDisruptionBudget".
		pods, err := tb.Client.CoreV1().Pods("multi").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("pods of multi/web: %v", err)
		}
		err = tb.Client.CoreV1().Pods("multi").EvictV1(ctx, &policyv1.Eviction{
			ObjectMeta:    metav1.ObjectMeta{Namespace: "multi", Name: pods.Items[0].Name},
			DeleteOptions: &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}},
		})
		if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "more than one PodDisruptionBudget") {
			t.Errorf("the Eviction API answered %v, want 500 more than one PodDisruptionBudget", err)
		}
		// One PDB left, allowing 1 of its 2 pods: the drain progresses in steps.
		if err := tb.Client.PolicyV1().PodDisruptionBudgets("multi").Delete(ctx, "front", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e = waitVerdict(t, "GO in steps once one PDB is left", node, gate.GO, 2*time.Minute, nil)
		for _, c := range e.Checks {
			if c.Name == "drain/pdb" && (c.Value != "drains in steps" || !strings.Contains(c.Why, "multi/web allows 1 at a time, 1 pods wait")) {
				t.Errorf("drain/pdb %s %q: want drains in steps", c.Value, c.Why)
			}
		}
	})

	// ALERTS without the bundle's watchdog proves nothing.
	t.Run("the watchdog's rule removed: UNKNOWN with the fix, GO once it is back", func(t *testing.T) {
		copies, err := filepath.Glob(filepath.Join(tb.Dir, "prometheus", "rules", "*-watchdog-rules.yml"))
		if err != nil || len(copies) != 1 {
			t.Fatalf("the testbed's copy of the watchdog rules: %v %v", copies, err)
		}
		orig, err := os.ReadFile(copies[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(copies[0], []byte("groups: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := tb.ReloadPrometheus(); err != nil {
			t.Fatal(err)
		}
		e := waitVerdict(t, "UNKNOWN without the watchdog", free, gate.WAIT, 2*time.Minute, func(e gate.Evaluation) error {
			r := e.Reasons()
			if len(r) != 1 || !strings.HasPrefix(r[0], "monitoring/watchdog UNKNOWN: the always-firing alert UpgradeGuardWatchdog is not firing") ||
				!strings.Contains(r[0], "load deploy/generated's rules") {
				return fmt.Errorf("reasons %q, want only the watchdog", r)
			}
			return nil
		})
		t.Logf("without the watchdog: %v", e.Reasons())
		if err := os.WriteFile(copies[0], orig, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := tb.ReloadPrometheus(); err != nil {
			t.Fatal(err)
		}
		waitVerdict(t, "GO with the watchdog back", free, gate.GO, 2*time.Minute, nil)
	})

	// Nodes on their way out and nodes starting are set
	// aside; a node not Ready past the grace fails; the node to replace may
	// be dead.
	t.Run("a leaving node and a starting node are set aside", func(t *testing.T) {
		// Nodes no kubelet (kwok) serves: never Ready, no Lease.
		for _, n := range []struct {
			name  string
			taint string
		}{{"leaving-0", "ToBeDeletedByClusterAutoscaler"}, {"fresh-0", ""}} {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{
				corev1.LabelHostname: n.name, corev1.LabelTopologyZone: "eu-west-1a"}}}
			if n.taint != "" {
				node.Spec.Taints = []corev1.Taint{{Key: n.taint, Value: strconv.FormatInt(time.Now().Unix(), 10), Effect: corev1.TaintEffectNoSchedule}}
			}
			if _, err := tb.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		created := time.Now()
		defer func() {
			for _, n := range []string{"leaving-0", "fresh-0"} {
				_ = tb.Client.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
			}
		}()
		// Within fresh-0's grace (60s): GO, both named as set aside.
		var last gate.Evaluation
		if err := testbed.WaitFor(ctx, 45*time.Second, "GO with leaving-0 and fresh-0 set aside", func(context.Context) (bool, error) {
			last = evaluate(t, free)
			for _, c := range last.Checks {
				if c.Name == "nodes/ready" && last.Verdict == gate.GO &&
					strings.Contains(c.Why, "set aside, on their way out: leaving-0 (tainted ToBeDeletedByClusterAutoscaler)") &&
					strings.Contains(c.Why, "set aside, starting within nodes.startup_grace: fresh-0 (created") {
					return true, nil
				}
			}
			return false, fmt.Errorf("verdict %s: %v", last.Verdict, last.Reasons())
		}); err != nil {
			t.Fatalf("%v (%s after creating the nodes)\n%s", err, time.Since(created).Round(time.Second), table(last))
		}
		t.Logf("set aside:\n%s", table(last))
		// Past the startup grace the new node fails; the leaving one stays aside.
		e := waitVerdict(t, "WAIT for fresh-0 past its grace", free, gate.WAIT, 2*time.Minute, func(e gate.Evaluation) error {
			r := e.Reasons()
			// The failing list is before the notes, which name leaving-0 as set aside.
			if len(r) == 0 || strings.SplitN(r[0], ";", 2)[0] != "nodes/ready FAIL: not ready: fresh-0" {
				return fmt.Errorf("reasons %q, want fresh-0 not ready and leaving-0 set aside", r)
			}
			return nil
		})
		t.Logf("past the grace: %v", e.Reasons())
		// fresh-0 is the node to replace: its own state does not block.
		e = evaluate(t, "fresh-0")
		for _, c := range e.Checks {
			if strings.HasPrefix(c.Name, "nodes/") && c.Status != gate.Pass && c.Status != gate.Skip {
				t.Errorf("%s %s for the node to replace: %s", c.Name, c.Status, c.Why)
			}
			if c.Name == "nodes/ready" && !strings.Contains(c.Why, "the node to replace, reported, not blocking: fresh-0 is not Ready") {
				t.Errorf("nodes/ready does not report the node to replace: %q", c.Why)
			}
		}
		if err := tb.Client.CoreV1().Nodes().Delete(ctx, "fresh-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitVerdict(t, "GO with leaving-0 still there", free, gate.GO, 2*time.Minute, nil)
	})

	// A store of another cluster, and a store gateway
	// whose blocks end before the time asked, cannot hold the answer: down,
	// they do not make it unknown.
	t.Run("down stores that cannot hold the answer", func(t *testing.T) {
		q := startOtherStores(ctx, t, tb)
		g4, err := gate.New(gate.Config{URL: q.url, QueryTimeout: 10 * time.Second}, policy, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			t.Fatal(err)
		}
		q.stop(t)
		var e gate.Evaluation
		if err := testbed.WaitFor(ctx, 2*time.Minute, "GO through the query with both extra stores down", func(ctx context.Context) (bool, error) {
			e, err = g4.Evaluate(ctx, free)
			if err != nil {
				return false, err
			}
			for _, c := range e.Checks {
				if c.Name == "monitoring/stores" && strings.Contains(c.Why, "staging") && strings.Contains(c.Why, q.gateway) && e.Verdict == gate.GO {
					return true, nil
				}
			}
			return false, fmt.Errorf("verdict %s: %v", e.Verdict, e.Reasons())
		}); err != nil {
			t.Fatalf("%v\n%s", err, table(e))
		}
		t.Logf("other stores down:\n%s", table(e))
		// A query over every cluster needs the staging store: UNKNOWN.
		all, err := gate.ParsePolicy([]byte(gatePolicy + "custom:\n- {name: all-clusters, query: 'count(up)', min: 1}\n"))
		if err != nil {
			t.Fatal(err)
		}
		ga, err := gate.New(gate.Config{URL: q.url, QueryTimeout: 10 * time.Second}, all, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err = ga.Evaluate(ctx, free)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range e.Checks {
			if c.Name == "custom/all-clusters" && (c.Status != gate.Unknown || !strings.Contains(c.Why, `cluster="staging"`)) {
				t.Errorf("custom/all-clusters %s %q: want UNKNOWN naming the staging store", c.Status, c.Why)
			}
		}
	})

	// An Auto Scaling instance in service whose node is
	// gone leaves its group a node short: WAIT, naming group and instance.
	t.Run("an instance in service without a node: WAIT, then GO once it is back", func(t *testing.T) {
		node := names[3]
		var id string
		for _, iid := range group.Instances {
			if n, ok := backed.Node(iid); ok && n == node {
				id = iid
			}
		}
		old, err := tb.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil || id == "" {
			t.Fatalf("node %s of instance %q: %v", node, id, err)
		}
		if err := tb.Client.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		e := waitVerdict(t, "WAIT for the group short of a node", free, gate.WAIT, 2*time.Minute, func(e gate.Evaluation) error {
			for _, c := range e.Checks {
				if c.Name == "nodes/groups" && c.Status == gate.Fail && strings.Contains(c.Why, "node group short of nodes: nodes") && strings.Contains(c.Why, id+" (no node)") {
					return nil
				}
			}
			return fmt.Errorf("nodes/groups does not name %s: %v", id, e.Reasons())
		})
		t.Logf("a node short: %v", e.Reasons())
		back := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: old.Labels, Annotations: old.Annotations}, Spec: corev1.NodeSpec{ProviderID: old.Spec.ProviderID, Taints: old.Spec.Taints}}
		back.Status.Capacity, back.Status.Allocatable = old.Status.Capacity, old.Status.Allocatable
		back.Status.NodeInfo = old.Status.NodeInfo
		if _, err := tb.Client.CoreV1().Nodes().Create(ctx, back, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Its pods come back too (the availability check waits for them).
		waitVerdict(t, "GO once the node is back", free, gate.GO, 4*time.Minute, nil)
	})

	t.Run("one replica stopped: still GO", func(t *testing.T) {
		// One label set, two stores: the store gateway announces r1's label set too;
		// the sidecar of r0 still covers r1's recent data.
		healthy, err := storeHealth(ctx, tb.ThanosQueryURL)
		if err != nil {
			t.Fatal(err)
		}
		if len(healthy) != 3 {
			t.Fatalf("Thanos Query's stores: %v, want two sidecars and a store gateway", healthy)
		}
		if err := tb.StopPrometheusReplica(1); err != nil {
			t.Fatal(err)
		}
		// Thanos Query notices within seconds; then the store list shows r1
		// down and every answer comes from r0.
		e := waitVerdict(t, "the gate to see r1 missing and covered", free, gate.GO, 2*time.Minute, nil)
		seen := false
		for range 30 {
			e = evaluate(t, free)
			if e.Verdict != gate.GO {
				t.Fatalf("one replica down: %s\n%s", e.Verdict, table(e))
			}
			for _, c := range e.Checks {
				if strings.Contains(c.Why, `replica="r1"} missing, covered by its replica`) {
					seen = true
				}
			}
			if seen {
				break
			}
			time.Sleep(time.Second)
		}
		if !seen {
			t.Errorf("r1 stopped but no check says it was covered by r0:\n%s", table(e))
		}
		t.Logf("one replica down:\n%s", table(e))
	})

	t.Run("both replicas stopped: never GO", func(t *testing.T) {
		if err := tb.StopPrometheusReplica(0); err != nil {
			t.Fatal(err)
		}
		var last gate.Evaluation
		for i := 0; i < 15; i++ {
			last = evaluate(t, free)
			if last.Verdict == gate.GO {
				t.Fatalf("GO with both replicas stopped:\n%s", table(last))
			}
			time.Sleep(time.Second)
		}
		t.Logf("both replicas down: %v", last.Reasons())
		// And gate wait ends in STOP.
		_, err := gate.Wait(ctx, g, free, gate.WaitOptions{Consecutive: 2, Interval: time.Second, Timeout: 5 * time.Second})
		var te *gate.TimeoutError
		if !errors.As(err, &te) || te.Last.Verdict != gate.STOP {
			t.Errorf("Wait with both replicas down: %v", err)
		}
		for i := range 2 {
			if err := tb.StartPrometheusReplica(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		waitVerdict(t, "GO once both replicas are back", free, gate.GO, 3*time.Minute, nil)
	})

	t.Run("a stopped heartbeat gives WAIT", func(t *testing.T) {
		victim := names[2]
		if err := tb.StopHeartbeat(ctx, victim); err != nil {
			t.Fatal(err)
		}
		// kwok's restart delays every node's renewal a little; then only
		// the victim stays overdue.
		e := waitVerdict(t, "WAIT on the stopped heartbeat of "+victim+" alone", free, gate.WAIT, 2*time.Minute, func(e gate.Evaluation) error {
			r := e.Reasons()
			if len(r) != 1 || !strings.HasPrefix(r[0], "nodes/heartbeat FAIL: heartbeat overdue: "+victim+" ") || strings.Contains(r[0], ", ") {
				return fmt.Errorf("reasons %q, want only the heartbeat of %s", r, victim)
			}
			return nil
		})
		t.Logf("stopped heartbeat: %v", e.Reasons())
		// The node with the stopped heartbeat is replaceable: about it,
		// the nodes rows report and do not block.
		e = evaluate(t, victim)
		for _, c := range e.Checks {
			if strings.HasPrefix(c.Name, "nodes/") && c.Status != gate.Pass && c.Status != gate.Skip {
				t.Errorf("%s %s for the node to replace: %s", c.Name, c.Status, c.Why)
			}
		}
	})
}

func table(e gate.Evaluation) string {
	var sb strings.Builder
	_ = gate.WriteTable(&sb, e, gate.TableWide) // diagnostics: with the queries
	return sb.String()
}

func writePolicy(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gate.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// otherStores is a second Thanos Query in front of the testbed's two
// sidecars and two more stores that the gate's queries never need: the
// sidecar of another cluster's Prometheus (cluster="staging") and a store
// gateway over a block of this cluster that ended hours ago.
type otherStores struct {
	url     string // the second Thanos Query
	gateway string // the store gateway's gRPC address, its name in the store list
	staging []*testbed.Process
	gw      *testbed.Process
}

// startOtherStores starts the other cluster's Prometheus and sidecar, the
// store gateway and the second Thanos Query, and waits until that query
// sees all four stores healthy.
func startOtherStores(ctx context.Context, t *testing.T, tb *testbed.Testbed) *otherStores {
	t.Helper()
	addr := func() string {
		a, err := testbed.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var endpoints []string
	for _, p := range tb.Processes() {
		if strings.HasPrefix(p.Name, "thanos-sidecar-r") {
			for _, a := range p.Args {
				if v, ok := strings.CutPrefix(a, "--grpc-address="); ok && !slices.Contains(endpoints, v) {
					endpoints = append(endpoints, v)
				}
			}
		}
	}
	if len(endpoints) != 2 {
		t.Fatalf("the testbed's sidecars: %v", endpoints)
	}
	dir := t.TempDir()
	o := &otherStores{}
	start := func(name string, argv ...string) *testbed.Process {
		p, err := tb.StartProcess(name, argv, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ready := func(what, url string) {
		if err := testbed.WaitFor(ctx, 2*time.Minute, what, func(ctx context.Context) (bool, error) {
			resp, err := http.Get(url)
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	// The other cluster: one Prometheus replica and its sidecar.
	promAddr, sideGRPC, sideHTTP := addr(), addr(), addr()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 2s\n  external_labels: {cluster: staging, prometheus_replica: prometheus-staging-0}\n"+
		"scrape_configs:\n- job_name: prometheus\n  static_configs: [{targets: [%q]}]\n", promAddr)
	if err := os.WriteFile(filepath.Join(dir, "staging.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tsdb := filepath.Join(dir, "staging-data")
	o.staging = append(o.staging, start("prometheus-staging", tb.Binaries.Prometheus, "--config.file="+filepath.Join(dir, "staging.yml"),
		"--storage.tsdb.path="+tsdb, "--web.listen-address="+promAddr,
		"--storage.tsdb.min-block-duration=2h", "--storage.tsdb.max-block-duration=2h"))
	ready("the staging Prometheus", "http://"+promAddr+"/-/ready")
	o.staging = append(o.staging, start("thanos-sidecar-staging", tb.Binaries.Thanos, "sidecar", "--tsdb.path="+tsdb,
		"--prometheus.url=http://"+promAddr, "--grpc-address="+sideGRPC, "--http-address="+sideHTTP))
	ready("the staging sidecar", "http://"+sideHTTP+"/-/ready")

	// A block of this cluster from 4h to 3h ago, in a filesystem bucket.
	var om strings.Builder
	om.WriteString("# TYPE old_metric gauge\n")
	for ts := time.Now().Add(-4 * time.Hour); ts.Before(time.Now().Add(-3 * time.Hour)); ts = ts.Add(time.Minute) {
		fmt.Fprintf(&om, "old_metric{job=\"old\"} 1 %d\n", ts.Unix())
	}
	om.WriteString("# EOF\n")
	omFile, bucket := filepath.Join(dir, "old.om"), filepath.Join(dir, "bucket")
	if err := os.WriteFile(omFile, []byte(om.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, testbed.Promtool(t), "tsdb", "create-blocks-from", "openmetrics", omFile, bucket).CombinedOutput(); err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	metas, err := filepath.Glob(filepath.Join(bucket, "*", "meta.json"))
	if err != nil || len(metas) == 0 {
		t.Fatalf("no block made: %v", err)
	}
	for _, m := range metas {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var meta map[string]any
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Fatal(err)
		}
		meta["thanos"] = map[string]any{"labels": map[string]string{"cluster": "testbed"}, "downsample": map[string]any{"resolution": 0}, "source": "e2e"}
		if b, err = json.Marshal(meta); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objstore := filepath.Join(dir, "bucket.yml")
	if err := os.WriteFile(objstore, []byte("type: FILESYSTEM\nconfig:\n  directory: "+bucket+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gwGRPC, gwHTTP := addr(), addr()
	o.gateway = gwGRPC
	o.gw = start("thanos-store-old", tb.Binaries.Thanos, "store", "--data-dir="+filepath.Join(dir, "store-cache"),
		"--objstore.config-file="+objstore, "--grpc-address="+gwGRPC, "--http-address="+gwHTTP)
	ready("the store gateway", "http://"+gwHTTP+"/-/ready")

	// The second Thanos Query, over all four stores.
	qHTTP, qGRPC := addr(), addr()
	o.url = "http://" + qHTTP
	args := []string{tb.Binaries.Thanos, "query", "--http-address=" + qHTTP, "--grpc-address=" + qGRPC, "--query.replica-label=replica", "--query.replica-label=prometheus_replica"}
	for _, e := range append(endpoints, sideGRPC, gwGRPC) {
		args = append(args, "--endpoint="+e)
	}
	start("thanos-query-other", args...)
	if err := testbed.WaitFor(ctx, 3*time.Minute, "the second Thanos Query to see 4 healthy stores", func(ctx context.Context) (bool, error) {
		healthy, err := storeHealth(ctx, o.url)
		if err != nil {
			return false, err
		}
		n := 0
		for _, ok := range healthy {
			if ok {
				n++
			}
		}
		if n < 4 {
			return false, fmt.Errorf("healthy stores: %v", healthy)
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	return o
}

// stop stops the other cluster's Prometheus and sidecar and the store
// gateway; the second Thanos Query keeps them in its store list, with an
// error.
func (o *otherStores) stop(t *testing.T) {
	t.Helper()
	for _, p := range append(append([]*testbed.Process{}, o.staging...), o.gw) {
		if err := p.Stop(); err != nil {
			t.Logf("stopping %s: %v", p.Name, err)
		}
	}
}

// storeHealth returns each store of Thanos Query's /api/v1/stores by name,
// healthy or not.
func storeHealth(ctx context.Context, url string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/stores", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data map[string][]struct {
			Name      string  `json:"name"`
			LastError *string `json:"lastError"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, stores := range body.Data {
		for _, s := range stores {
			out[s.Name] = s.LastError == nil || *s.LastError == ""
		}
	}
	return out, nil
}
