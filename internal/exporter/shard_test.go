package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

func parseFlags(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	app := kingpin.New("test", "")
	cfg := AddFlags(app.Command("exporter", ""))
	_, err := app.Parse(append([]string{"exporter"}, args...))
	return cfg, err
}

// TestShardFlags checks that bad --shard and --total-shards values, and the
// AWS collectors on a shard, are usage errors (exit 2) naming the flags,
// found before any connection is tried.
func TestShardFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--total-shards=0"}, "--total-shards 0: must be at least 1"},
		{[]string{"--shard=3", "--total-shards=3"}, "--shard 3: must be from 0 to --total-shards minus one (2)"},
		{[]string{"--shard=-1", "--total-shards=2"}, "--shard -1"},
		{[]string{"--shard=1"}, "--shard 1: must be from 0 to --total-shards minus one (0)"},
		{[]string{"--total-shards=2", "--collector.cni"}, "--collector.cni with --total-shards 2"},
		{[]string{"--total-shards=2", "--collector.awsquota"}, "--collector.awsquota with --total-shards 2"},
	} {
		cfg, err := parseFlags(t, append(tc.args, "--kubeconfig=/nonexistent")...)
		if err != nil {
			t.Fatal(err)
		}
		err = Run(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if !errors.As(err, new(UsageError)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Run returned %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	for _, args := range [][]string{{}, {"--shard=1", "--total-shards=2"}, {"--shard=0", "--total-shards=1", "--collector.cni"}} {
		cfg, err := parseFlags(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.validateShard(); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// shardCluster is a small cluster: 12 nodes with their Leases, three pods on
// each under two PDBs, two pods not scheduled yet, and a Deployment.
func shardCluster() []runtime.Object {
	var objs []runtime.Object
	for n := range 12 {
		name := fmt.Sprintf("node-%02d", n)
		objs = append(objs,
			&corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelTopologyZone: "eu-west-1a"}},
				Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
			},
			&coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kube.NodeLeaseNamespace},
				Spec:       coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: time.Now()}, LeaseDurationSeconds: ptr.To[int32](40)},
			})
		for i, app := range []string{"web", "db", "batch"} {
			objs = append(objs, shardPod(fmt.Sprintf("%s-%d", app, n), name, app, i == 2))
		}
	}
	objs = append(objs, shardPod("pending-1", "", "web", false), shardPod("pending-2", "", "db", false))
	for _, app := range []string{"web", "db"} {
		objs = append(objs, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: app, Generation: 1},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: ptr.To(intstr.FromInt32(1)),
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			},
			Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, DisruptionsAllowed: 1, ExpectedPods: 12, CurrentHealthy: 12, DesiredHealthy: 11},
		})
	}
	objs = append(objs, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Generation: 1},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](12)},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 12, ReadyReplicas: 12, AvailableReplicas: 12, UpdatedReplicas: 12},
	})
	return objs
}

func shardPod(name, node, app string, unowned bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if node == "" {
		p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	}
	if !unowned {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app, UID: "rs", Controller: ptr.To(true)}}
	}
	return p
}

// exporterSeries runs the default collectors of an exporter started with
// args against client and returns a function scraping its upgradeguard
// series as lines (without the collectors' own success and duration, which
// every exporter has, and with heartbeat ages, which move, as "age").
func exporterSeries(t *testing.T, ctx context.Context, client *fake.Clientset, args ...string) func() []string {
	t.Helper()
	cfg, err := parseFlags(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validateShard(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	informers := kube.NewInformers(client, kube.Options{NodeLabels: cfg.Nodes.NodeLabels(), Shard: cfg.Shard}, logger)
	reg := prometheus.NewRegistry()
	set, _, err := newSet(ctx, cfg, informers, nil, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(set)
	informers.Start(ctx)
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := informers.WaitForSync(syncCtx); err != nil {
		t.Fatal(err)
	}
	// The families rendered at watch time are the writers', as the
	// handler serves them after the registry's.
	gatherer := prometheus.Gatherers{reg, metricstore.Gatherer(set.Writers()...)}
	return func() []string {
		mfs, err := gatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, mf := range mfs {
			name := mf.GetName()
			if strings.HasPrefix(name, "upgradeguard_collector_") {
				continue
			}
			for _, m := range mf.Metric {
				var b strings.Builder
				b.WriteString(name)
				for _, l := range m.GetLabel() {
					fmt.Fprintf(&b, " %s=%q", l.GetName(), l.GetValue())
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				if name == "upgradeguard_node_heartbeat_age_seconds" {
					b.WriteString(" age")
				} else {
					fmt.Fprintf(&b, " %g", v)
				}
				lines = append(lines, b.String())
			}
		}
		slices.Sort(lines)
		return lines
	}
}

// union returns the shards' series merged, and those more than one sent.
func union(shards []func() []string) (all, dup []string) {
	seen := map[string]bool{}
	for _, scrape := range shards {
		for _, l := range scrape() {
			if seen[l] {
				dup = append(dup, l)
			}
			seen[l] = true
		}
	}
	return slices.Sorted(maps.Keys(seen)), dup
}

// TestShardsUnionIsUnsharded runs one unsharded exporter and three shards
// on the same cluster: every shard serves a share of the nodes, and the union
// of their series is the unsharded exporter's, with none served twice - also
// after a pending pod is bound to a node, a node and its pods go, and a PDB's
// status changes.
func TestShardsUnionIsUnsharded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset(shardCluster()...)
	whole := exporterSeries(t, ctx, client)
	const total = 3
	var shards []func() []string
	for i := range total {
		shards = append(shards, exporterSeries(t, ctx, client, fmt.Sprintf("--shard=%d", i), fmt.Sprintf("--total-shards=%d", total)))
	}

	compare := func(when string, ready func([]string) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			want := whole()
			got, dup := union(shards)
			if ready(want) && slices.Equal(got, want) && len(dup) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: union of %d shards (served twice: %q):\n%s\nunsharded:\n%s", when, total, dup,
					strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	compare("at start", func([]string) bool { return true })
	for i, s := range shards {
		nodes := 0
		for _, l := range s() {
			if strings.HasPrefix(l, "upgradeguard_node_ready ") {
				nodes++
			}
		}
		if nodes == 0 || nodes == 12 {
			t.Errorf("shard %d serves %d of 12 nodes", i, nodes)
		}
	}

	pending, err := client.CoreV1().Pods("shop").Get(ctx, "pending-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pending.Spec.NodeName = "node-07"
	pending.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := client.CoreV1().Pods("shop").Update(ctx, pending, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	compare("after binding a pod", func(lines []string) bool {
		return slices.Contains(lines, `upgradeguard_node_evictable_pods node="node-07" 4`)
	})

	if err := client.CoreV1().Nodes().Delete(ctx, "node-03", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, app := range []string{"web", "db", "batch"} {
		if err := client.CoreV1().Pods("shop").Delete(ctx, app+"-3", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	web, err := client.PolicyV1().PodDisruptionBudgets("shop").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web.Status.DisruptionsAllowed = 0
	if _, err := client.PolicyV1().PodDisruptionBudgets("shop").UpdateStatus(ctx, web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	compare("after a node goes and a PDB is exhausted", func(lines []string) bool {
		return !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, `"node-03"`) }) &&
			slices.Contains(lines, `upgradeguard_pdb_disruptions_allowed namespace="shop" pdb="web" 0`)
	})
}
