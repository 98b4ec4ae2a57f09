package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestGateAcrossShards runs the exporter as deploy/overlays/sharded does:
// two shards of the Kubernetes collectors (--shard, --total-shards 2) and
// an unsharded exporter of the AWS collectors alone, all scraped by the
// testbed's Prometheus replicas into one job. The gate, unchanged, says
// WAIT for the node whose pods a PDB blocks and GO for another: the
// node's series come from its shard, the PDB's status from shard 0.
//
// Then a shard gone: shard 1's pod is evicted and Pending (its target
// leaves service discovery, so it has no up series at all, and its process
// stops) and one of its nodes goes NotReady. The gate without --node (what
// the canary soak, gate hold and the EKS recipe use) said GO, "N of N
// ready", counting only shard 0's nodes; it must say UNKNOWN naming shard 1,
// and UpgradeGuardExporterShardMissing must be pending for shard 1.
func TestGateAcrossShards(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	gb, ctx := startGateBed(t, 15*time.Minute)
	tb, aws, names := gb.tb, gb.aws, gb.names
	blocked, free := names[0], names[1]
	shardOf := func(n string) int {
		if (kube.Shard{Index: 0, Total: 2}).OwnsNode(n) {
			return 0
		}
		return 1
	}
	t.Logf("blocked node %s on shard %d, free node %s on shard %d", blocked, shardOf(blocked), free, shardOf(free))
	for _, n := range names {
		if err := testbed.WaitFor(ctx, 2*time.Minute, n+" Ready", tb.NodeReady(n, corev1.ConditionTrue)); err != nil {
			t.Fatal(err)
		}
	}
	zero := intstr.FromInt32(0)
	if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "shop", Name: "frozen", Replicas: 2, MaxUnavailable: &zero, Service: true,
		NodeSelector: map[string]string{corev1.LabelHostname: blocked}}); err != nil {
		t.Fatal(err)
	}

	var targets []string
	var procs []*testbed.Process
	start := func(name string, env []string, flags ...string) {
		addr := freeAddr(t)
		args := append([]string{bin, "exporter", "--kubeconfig", tb.Kubeconfig, "--web.listen-address", addr}, flags...)
		p, err := tb.StartProcess(name, args, env)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, addr)
		procs = append(procs, p)
	}
	start("upgradeguard-exporter-aws", []string{
		"AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY=" + awsfake.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true",
	}, "--no-collector.nodes", "--no-collector.pdb", "--no-collector.workloads",
		"--collector.cni", "--collector.awsquota", "--aws.region", "eu-west-1", "--aws.endpoint-url", aws.URL(), "--aws.cluster-name", "testbed")
	for i := range 2 {
		start(fmt.Sprintf("upgradeguard-exporter-shard-%d", i), nil, fmt.Sprintf("--shard=%d", i), "--total-shards=2")
	}
	if err := tb.SetScrapeTargets("upgradeguard", targets); err != nil {
		t.Fatal(err)
	}
	loadGeneratedAlert(t, tb, "UpgradeGuardExporterShardMissing")

	policy, err := gate.ParsePolicy([]byte(gatePolicy))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{URL: tb.ThanosQueryURL, QueryTimeout: 10 * time.Second}, policy,
		slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer wcancel()
	e, err := gate.Wait(wctx, g, free, gate.WaitOptions{Consecutive: 2, Interval: time.Second, Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatalf("no GO for the free node %s across shards: %v\n%s", free, err, table(e))
	}
	var last gate.Evaluation
	if err := testbed.WaitFor(ctx, 2*time.Minute, "WAIT for the blocked node", func(context.Context) (bool, error) {
		last, err = g.Evaluate(ctx, blocked)
		if err != nil {
			return false, err
		}
		r := last.Reasons()
		if last.Verdict != gate.WAIT || len(r) != 1 || !strings.Contains(r[0], "shop/frozen blocks 2 pods") {
			return false, fmt.Errorf("verdict %s: %s", last.Verdict, strings.Join(r, "; "))
		}
		return true, nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, table(last))
	}

	// Every shard says which it is, of how many; the unsharded AWS
	// exporter says nothing.
	if err := testbed.WaitFor(ctx, 2*time.Minute, "both shards' upgradeguard_exporter_total_shards", func(ctx context.Context) (bool, error) {
		ss, err := tb.QueryThanos(ctx, `upgradeguard_exporter_total_shards{cluster="testbed"}`, true)
		if err != nil {
			return false, err
		}
		got := map[string]float64{}
		for _, s := range ss {
			got[s.Metric["shard"]] = s.Value
		}
		if len(ss) != 2 || got["0"] != 2 || got["1"] != 2 {
			return false, fmt.Errorf("series %v", ss)
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	e, err = gate.Wait(wctx, g, "", gate.WaitOptions{Consecutive: 2, Interval: time.Second, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatalf("no GO without --node across two healthy shards: %v\n%s", err, table(e))
	}
	t.Logf("both shards: nodes/ready %s", e.Checks[slices.IndexFunc(e.Checks, func(c gate.CheckResult) bool { return c.Name == "nodes/ready" })].Value)

	// Shard 1's pod evicted and Pending: gone from service discovery, its
	// process stopped; then a node of shard 1 goes NotReady.
	// The victim is a node of shard 1 other than the blocked one when there
	// is one, so that nothing else (the frozen workload's pods, pinned to
	// the blocked node) makes the gate wait: before, it said GO.
	var victim string
	for _, n := range names {
		if shardOf(n) == 1 && (victim == "" || victim == blocked) {
			victim = n
		}
	}
	if victim == "" {
		t.Fatalf("no node of %v hashes to shard 1", names)
	}
	if err := tb.SetScrapeTargets("upgradeguard", []string{targets[0], targets[1]}); err != nil {
		t.Fatal(err)
	}
	if err := procs[2].Stop(); err != nil {
		t.Logf("stopping shard 1: %v", err)
	}
	if err := tb.StopHeartbeat(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitFor(ctx, 3*time.Minute, victim+" NotReady", func(ctx context.Context) (bool, error) {
		// NodeReady errs for any other status: only True is Ready.
		if ok, _ := tb.NodeReady(victim, corev1.ConditionTrue)(ctx); ok {
			return false, fmt.Errorf("node %s still Ready", victim)
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if ss, err := tb.QueryThanos(ctx, fmt.Sprintf(`up{cluster="testbed", instance=%q}`, targets[2]), true); err != nil || len(ss) != 0 {
		t.Errorf("shard 1's target should have no up series at all: %v %v", ss, err)
	}
	const missing = "exporter shard 1 of 2 is missing"
	check := func(what string, g *gate.Gate, node string) gate.Evaluation {
		t.Helper()
		var last gate.Evaluation
		if err := testbed.WaitFor(ctx, 2*time.Minute, what+": nodes/ready UNKNOWN naming shard 1", func(ctx context.Context) (bool, error) {
			ev, err := g.Evaluate(ctx, node)
			if err != nil {
				return false, err
			}
			last = ev
			var ready gate.CheckResult
			for _, c := range last.Checks {
				if c.Name == "nodes/ready" {
					ready = c
				}
			}
			if ready.Status == gate.Unknown && strings.Contains(ready.Why, missing) && last.Verdict != gate.GO {
				return true, nil
			}
			return false, fmt.Errorf("verdict %s, nodes/ready %s %q: %s", last.Verdict, ready.Status, ready.Value, strings.Join(last.Reasons(), "; "))
		}); err != nil {
			t.Fatalf("%v\n%s", err, table(last))
		}
		t.Logf("%s with shard 1 gone and %s NotReady: %s\n%s", what, victim, last.Verdict, table(last))
		return last
	}
	e = check("gate without --node", g, "")
	// nodes/groups had set the missing shard's nodes' instances aside as
	// "went away after the last AWS refresh" and passed.
	for _, name := range []string{"nodes/heartbeat", "nodes/transitions", "nodes/groups"} {
		for _, c := range e.Checks {
			if c.Name == name && (c.Status != gate.Unknown || !strings.Contains(c.Why, missing)) {
				t.Errorf("%s: %s %q, want UNKNOWN naming shard 1", name, c.Status, c.Why)
			}
		}
	}
	// --nodegroup, when the nodes carry a node group: the group's node
	// list comes from the shards.
	group := ""
	ss, err := tb.QueryThanos(ctx, `upgradeguard_node_info{cluster="testbed"}`, true)
	for _, s := range ss {
		if s.Metric["nodegroup"] != "" {
			group = s.Metric["nodegroup"]
		}
	}
	if group != "" {
		gg, err := gate.New(gate.Config{URL: tb.ThanosQueryURL, QueryTimeout: 10 * time.Second, NodeGroup: group}, policy,
			slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			t.Fatal(err)
		}
		e = check("gate --nodegroup "+group, gg, "")
		for _, c := range e.Checks {
			if c.Name == "drain/pdb" && c.Status == gate.Pass {
				t.Errorf("drain/pdb of the node group PASS with shard 1 missing: %q", c.Why)
			}
		}
	} else {
		t.Logf("the nodes carry no node group (%v, %v): --nodegroup not tried", ss, err)
	}

	// The alert: pending (its for is 10m) for shard 1, which reported
	// before.
	if err := testbed.WaitFor(ctx, 2*time.Minute, "UpgradeGuardExporterShardMissing for shard 1", func(ctx context.Context) (bool, error) {
		ss, err := tb.QueryThanos(ctx, `ALERTS{alertname="UpgradeGuardExporterShardMissing"}`, true)
		if err != nil {
			return false, err
		}
		for _, s := range ss {
			if s.Metric["shard"] == "1" && s.Metric["job"] == "upgradeguard" && (s.Metric["alertstate"] == "pending" || s.Metric["alertstate"] == "firing") {
				t.Logf("ALERTS %v", s.Metric)
				return true, nil
			}
		}
		return false, fmt.Errorf("ALERTS %v", ss)
	}); err != nil {
		t.Fatal(err)
	}
}

// loadGeneratedAlert adds the alert named name, as deploy/generated's
// prometheus-rules.yaml has it, to the rules the testbed's Prometheus
// replicas evaluate: startGateBed loads only the bundle's watchdog, whose
// copy in the testbed's rules directory (testbed.Options.RuleFiles are
// copied there as NN-<name>) gets a second group, and the replicas reload.
func loadGeneratedAlert(t *testing.T, tb *testbed.Testbed, name string) {
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
	var rule map[string]any
	for _, g := range file.Groups {
		rules, _ := g["rules"].([]any)
		for _, r := range rules {
			if m, ok := r.(map[string]any); ok && m["alert"] == name {
				rule = m
			}
		}
	}
	if rule == nil {
		t.Fatalf("no %s in deploy/generated/prometheus-rules.yaml", name)
	}
	copies, err := filepath.Glob(filepath.Join(tb.Dir, "prometheus", "rules", "*-watchdog-rules.yml"))
	if err != nil || len(copies) != 1 {
		t.Fatalf("the watchdog rule file's copy in the testbed: %v %v", copies, err)
	}
	watchdog, err := os.ReadFile(copies[0])
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.Unmarshal(watchdog, &rf); err != nil {
		t.Fatal(err)
	}
	rf.Groups = append(rf.Groups, map[string]any{"name": "e2e-" + name, "rules": []any{rule}})
	out, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copies[0], out, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tb.ReloadPrometheus(); err != nil {
		t.Fatal(err)
	}
}
