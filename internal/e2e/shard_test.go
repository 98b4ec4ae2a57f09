package e2e

import (
	"context"
	"fmt"
	"log/slog"
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
	gb, ctx := startGateBed(t, 12*time.Minute)
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
