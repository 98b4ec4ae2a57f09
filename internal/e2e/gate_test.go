package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// gateRules: an always-firing Watchdog, and an alert that fires while a
// node of the node group "canary" exists, so the test can toggle it.
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

const gatePolicy = `
matchers: 'cluster="testbed"'
interval: 1s
monitoring:
  watchdog: Watchdog
nodes:
  transitions_window: 3m
`

func TestGateThroughThanos(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "gate-rules.yml")
	if err := os.WriteFile(rules, []byte(gateRules), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{rules}, NodeLeaseDurationSeconds: 20})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	// The fake AWS account: a tagged subnet per zone and one Auto Scaling
	// group whose 4 instances are the kwok nodes.
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
	blocked, free := names[0], names[1]
	for _, n := range names {
		if err := testbed.WaitFor(ctx, 2*time.Minute, n+" Ready", tb.NodeReady(n, corev1.ConditionTrue)); err != nil {
			t.Fatal(err)
		}
	}
	// A PDB that blocks every eviction from one node.
	zero := intstr.FromInt32(0)
	if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "shop", Name: "frozen", Replicas: 2, MaxUnavailable: &zero,
		NodeSelector: map[string]string{corev1.LabelHostname: blocked}}); err != nil {
		t.Fatal(err)
	}

	startExporter(t, tb, bin, aws.URL())

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

	t.Run("one replica stopped: still GO", func(t *testing.T) {
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
	})
}

func table(e gate.Evaluation) string {
	var sb strings.Builder
	_ = gate.WriteTable(&sb, e, 0)
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
