package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

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
func TestGateAcrossShards(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "gate-rules.yml")
	if err := os.WriteFile(rules, []byte(gateRules), 0o644); err != nil {
		t.Fatal(err)
	}
	watchdog := filepath.Join(t.TempDir(), "watchdog-rules.yml")
	if err := os.WriteFile(watchdog, []byte(watchdogRules(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{rules, watchdog}, NodeLeaseDurationSeconds: 20})
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

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
	start := func(name string, env []string, flags ...string) {
		addr := freeAddr(t)
		args := append([]string{bin, "exporter", "--kubeconfig", tb.Kubeconfig, "--web.listen-address", addr}, flags...)
		if _, err := tb.StartProcess(name, args, env); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, addr)
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
}
