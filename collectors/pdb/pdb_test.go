package pdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

var help = map[string]string{
	"upgradeguard_pdb_disruptions_allowed": "Pod disruptions the PodDisruptionBudget allows now, from its status.",
	"upgradeguard_pdb_expected_pods":       "Pods the PodDisruptionBudget expects to exist, from its status.",
	"upgradeguard_pdb_current_healthy":     "Healthy pods the PodDisruptionBudget counts now, from its status.",
	"upgradeguard_pdb_desired_healthy":     "Healthy pods the PodDisruptionBudget requires, from its status.",
	"upgradeguard_pdb_unsatisfiable":       "Whether the PodDisruptionBudget's spec can never allow an eviction at the expected number of pods (1) or can (0).",
	"upgradeguard_pdb_gate_hold":           gateHoldFamily.Help,
	"upgradeguard_node_evictable_pods":     "Pods a drain of the node would evict: all but DaemonSet pods, mirror pods and finished pods.",
	"upgradeguard_node_unmanaged_pods":     "Pods a drain of the node would evict that have no controller, so are deleted for good.",
	"upgradeguard_node_local_storage_pods": "Pods a drain of the node would evict that have an emptyDir volume, whose data is lost.",
	"upgradeguard_node_drain_blocked_pods": "Pods on the node the Eviction API would refuse now because of the PodDisruptionBudget, were the node drained alone, by reason: budget_exhausted (the budget allows fewer disruptions than the pods need), multiple_pdbs (more than one PodDisruptionBudget selects the pod), status_stale (the budget's status lags its spec).",
	"upgradeguard_node_drainable":          "Whether the Eviction API would accept every pod a drain of the node evicts (1) or a PodDisruptionBudget refuses one (0).",
}

var (
	pdbMetrics = []string{
		"upgradeguard_pdb_disruptions_allowed", "upgradeguard_pdb_expected_pods",
		"upgradeguard_pdb_current_healthy", "upgradeguard_pdb_desired_healthy", "upgradeguard_pdb_unsatisfiable",
	}
	nodeMetrics = []string{
		"upgradeguard_node_evictable_pods", "upgradeguard_node_unmanaged_pods", "upgradeguard_node_local_storage_pods",
		"upgradeguard_node_drain_blocked_pods", "upgradeguard_node_drainable",
	}
)

// exposition renders series lines as exposition text, each family under its
// HELP and TYPE lines.
func exposition(lines ...string) string {
	var order []string
	byName := map[string][]string{}
	for _, l := range lines {
		name := l[:strings.IndexAny(l, "{ ")]
		if _, ok := byName[name]; !ok {
			order = append(order, name)
		}
		byName[name] = append(byName[name], l)
	}
	var b strings.Builder
	for _, n := range order {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", n, help[n], n)
		for _, l := range byName[n] {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// nodeSeries returns a node's four unconditional series.
func nodeSeries(node string, evictable, unmanaged, localStorage, drainable int) []string {
	return []string{
		fmt.Sprintf(`upgradeguard_node_evictable_pods{node=%q} %d`, node, evictable),
		fmt.Sprintf(`upgradeguard_node_unmanaged_pods{node=%q} %d`, node, unmanaged),
		fmt.Sprintf(`upgradeguard_node_local_storage_pods{node=%q} %d`, node, localStorage),
		fmt.Sprintf(`upgradeguard_node_drainable{node=%q} %d`, node, drainable),
	}
}

// blocked is a drain-blocked series with reason budget_exhausted;
// blockedFor names the reason.
func blocked(node, ns, pdb string, n int) string {
	return blockedFor(node, ns, pdb, ReasonBudgetExhausted, n)
}

func blockedFor(node, ns, pdb, reason string, n int) string {
	return fmt.Sprintf(`upgradeguard_node_drain_blocked_pods{namespace=%q,node=%q,pdb=%q,reason=%q} %d`, ns, node, pdb, reason, n)
}

// pdbSeries returns a PDB's five series.
func pdbSeries(ns, name string, allowed, expected, current, desired, unsatisfiable int) []string {
	l := fmt.Sprintf(`{namespace=%q,pdb=%q}`, ns, name)
	return []string{
		fmt.Sprintf("upgradeguard_pdb_disruptions_allowed%s %d", l, allowed),
		fmt.Sprintf("upgradeguard_pdb_expected_pods%s %d", l, expected),
		fmt.Sprintf("upgradeguard_pdb_current_healthy%s %d", l, current),
		fmt.Sprintf("upgradeguard_pdb_desired_healthy%s %d", l, desired),
		fmt.Sprintf("upgradeguard_pdb_unsatisfiable%s %d", l, unsatisfiable),
	}
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// pod returns a Running, Ready pod owned by a ReplicaSet.
func pod(ns, name, node string, labels map[string]string, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-rs", UID: "rs-uid", Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "pause:3.10"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func notReady(p *corev1.Pod) { p.Status.Conditions[1].Status = corev1.ConditionFalse }
func unowned(p *corev1.Pod)  { p.OwnerReferences = nil }
func withEmptyDir(p *corev1.Pod) {
	p.Spec.Volumes = append(p.Spec.Volumes,
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
}
func phase(ph corev1.PodPhase) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func ownedBy(kind string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.OwnerReferences[0].Kind = kind }
}
func mirror(p *corev1.Pod) {
	p.Annotations = map[string]string{kube.MirrorPodAnnotation: "hash"}
	p.OwnerReferences[0] = metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: p.Spec.NodeName, UID: "node-uid", Controller: ptr.To(true)}
}
func deleting(p *corev1.Pod) {
	p.DeletionTimestamp = &metav1.Time{Time: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	p.Finalizers = []string{"example.com/hold"}
}

// pdb returns a PDB with maxUnavailable 1, observed at its generation, and
// the given status counters.
func pdb(ns, name string, sel *metav1.LabelSelector, allowed, expected, current, desired int32, opts ...func(*policyv1.PodDisruptionBudget)) *policyv1.PodDisruptionBudget {
	p := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1, ResourceVersion: "1"},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: ptr.To(intstr.FromInt32(1))},
		Status: policyv1.PodDisruptionBudgetStatus{
			ObservedGeneration: 1,
			DisruptionsAllowed: allowed,
			ExpectedPods:       expected,
			CurrentHealthy:     current,
			DesiredHealthy:     desired,
			DisruptedPods:      map[string]metav1.Time{},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func minAvailable(v intstr.IntOrString) func(*policyv1.PodDisruptionBudget) {
	return func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable, p.Spec.MinAvailable = nil, &v }
}
func maxUnavailable(v intstr.IntOrString) func(*policyv1.PodDisruptionBudget) {
	return func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable, p.Spec.MaxUnavailable = nil, &v }
}
func unhealthyPolicy(v policyv1.UnhealthyPodEvictionPolicyType) func(*policyv1.PodDisruptionBudget) {
	return func(p *policyv1.PodDisruptionBudget) { p.Spec.UnhealthyPodEvictionPolicy = &v }
}
func generation(gen, observed int64) func(*policyv1.PodDisruptionBudget) {
	return func(p *policyv1.PodDisruptionBudget) { p.Generation, p.Status.ObservedGeneration = gen, observed }
}

func app(name string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
}

func lbl(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type env struct {
	client    *fake.Clientset
	informers *kube.Informers
	nodes     *kube.Informer
	pods      *kube.Informer
	pdbs      *kube.Informer
	collector *Collector
}

// start runs real informers on the fake clientset and waits for
// them to sync.
func start(t *testing.T, client *fake.Clientset) *env {
	t.Helper()
	f := kube.NewInformers(client, kube.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e := &env{client: client, informers: f, nodes: f.Nodes(), pods: f.Pods(), pdbs: f.PodDisruptionBudgets()}
	e.collector = New(e.nodes, e.pods, e.pdbs)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx)
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	if err := f.WaitForSync(syncCtx); err != nil {
		t.Fatal(err)
	}
	return e
}

// errorRecorder collects the errors Update returns through AsPrometheus.
type errorRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (r *errorRecorder) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *errorRecorder) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// compare collects c and compares the named metrics with the series.
func compare(t *testing.T, c *Collector, series []string, names ...string) error {
	t.Helper()
	var rec errorRecorder
	if err := testutil.CollectAndCompare(collectors.AsPrometheus(c, rec.record), strings.NewReader(exposition(series...)), names...); err != nil {
		t.Error(err)
	}
	return rec.err()
}

func TestCollector(t *testing.T) {
	ns := "shop"
	tests := []struct {
		name    string
		objs    []runtime.Object
		metrics []string
		want    []string
		wantErr string
	}{
		{
			name: "status gauges",
			objs: []runtime.Object{
				pdb(ns, "web", app("web"), 1, 3, 3, 2),
				pdb(ns, "db", app("db"), 0, 3, 2, 2, minAvailable(intstr.FromInt32(2))),
			},
			metrics: pdbMetrics,
			want: slices.Concat(
				pdbSeries(ns, "web", 1, 3, 3, 2, 0),
				pdbSeries(ns, "db", 0, 3, 2, 2, 0),
			),
		},
		{
			name: "unsatisfiable specs",
			objs: []runtime.Object{
				pdb(ns, "max-0", app("a"), 0, 2, 2, 2, maxUnavailable(intstr.FromInt32(0))),
				pdb(ns, "max-0pct", app("a"), 0, 4, 4, 4, maxUnavailable(intstr.FromString("0%"))),
				pdb(ns, "max-25pct", app("a"), 1, 4, 4, 3, maxUnavailable(intstr.FromString("25%"))),
				pdb(ns, "max-1-no-pods", app("a"), 0, 0, 0, 0),
				pdb(ns, "min-equal", app("a"), 0, 3, 3, 3, minAvailable(intstr.FromInt32(3))),
				pdb(ns, "min-above", app("a"), 0, 3, 3, 5, minAvailable(intstr.FromInt32(5))),
				pdb(ns, "min-below", app("a"), 1, 3, 3, 2, minAvailable(intstr.FromInt32(2))),
				pdb(ns, "min-int-no-pods", app("a"), 0, 0, 0, 1, minAvailable(intstr.FromInt32(1))),
				pdb(ns, "min-50pct", app("a"), 2, 4, 4, 2, minAvailable(intstr.FromString("50%"))),
				// 99% of 4 rounds up to 4, as the disruption controller rounds.
				pdb(ns, "min-99pct", app("a"), 0, 4, 4, 4, minAvailable(intstr.FromString("99%"))),
				pdb(ns, "min-100pct", app("a"), 0, 4, 4, 4, minAvailable(intstr.FromString("100%"))),
				pdb(ns, "min-100pct-no-pods", app("a"), 0, 0, 0, 0, minAvailable(intstr.FromString("100%"))),
				// Neither field: the controller's expectedPods stays 0, so it never allows a disruption.
				pdb(ns, "neither", app("a"), 0, 0, 3, 0, func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = nil }),
			},
			metrics: []string{"upgradeguard_pdb_unsatisfiable"},
			want: []string{
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="max-0"} 1`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="max-0pct"} 1`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="max-25pct"} 0`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="max-1-no-pods"} 0`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-equal"} 1`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-above"} 1`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-below"} 0`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-int-no-pods"} 0`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-50pct"} 0`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-99pct"} 1`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-100pct"} 1`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="min-100pct-no-pods"} 1`,
				`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="neither"} 1`,
			},
		},
		{
			name: "maxUnavailable 0 blocks its pods, a node without pods is drainable",
			objs: []runtime.Object{
				node("n1"), node("n2"),
				pdb(ns, "web", app("web"), 0, 2, 2, 2, maxUnavailable(intstr.FromInt32(0))),
				pod(ns, "web-1", "n1", lbl("app", "web")),
				pod(ns, "web-2", "n1", lbl("app", "web")),
				pod(ns, "other", "n1", lbl("app", "other")),
			},
			metrics: append([]string{"upgradeguard_pdb_unsatisfiable"}, nodeMetrics...),
			want: slices.Concat(
				nodeSeries("n1", 3, 0, 0, 0),
				nodeSeries("n2", 0, 0, 0, 1),
				[]string{
					blocked("n1", ns, "web", 2),
					`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="web"} 1`,
				},
			),
		},
		{
			name: "the first disruptionsAllowed pods of a node pass, each node counted alone",
			objs: []runtime.Object{
				node("n1"), node("n2"),
				pdb(ns, "web", app("web"), 1, 4, 4, 3),
				pod(ns, "web-1", "n1", lbl("app", "web")),
				pod(ns, "web-2", "n1", lbl("app", "web")),
				pod(ns, "web-3", "n1", lbl("app", "web")),
				pod(ns, "web-4", "n2", lbl("app", "web")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 3, 0, 0, 0),
				nodeSeries("n2", 1, 0, 0, 1),
				[]string{blocked("n1", ns, "web", 2)},
			),
		},
		{
			name: "minAvailable equal to replicas",
			objs: []runtime.Object{
				node("n1"), node("n2"),
				pdb(ns, "db", app("db"), 0, 2, 2, 2, minAvailable(intstr.FromInt32(2))),
				pod(ns, "db-0", "n1", lbl("app", "db")),
				pod(ns, "db-1", "n2", lbl("app", "db")),
			},
			metrics: append([]string{"upgradeguard_pdb_unsatisfiable"}, nodeMetrics...),
			want: slices.Concat(
				nodeSeries("n1", 1, 0, 0, 0),
				nodeSeries("n2", 1, 0, 0, 0),
				[]string{
					blocked("n1", ns, "db", 1),
					blocked("n2", ns, "db", 1),
					`upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="db"} 1`,
				},
			),
		},
		{
			name: "percentages",
			objs: []runtime.Object{
				node("n1"),
				pdb("a", "min-50pct", app("web"), 2, 4, 4, 2, minAvailable(intstr.FromString("50%"))),
				pod("a", "web-1", "n1", lbl("app", "web")),
				pod("a", "web-2", "n1", lbl("app", "web")),
				pod("a", "web-3", "n1", lbl("app", "web")),
				pdb("b", "min-100pct", app("web"), 0, 2, 2, 2, minAvailable(intstr.FromString("100%"))),
				pod("b", "web-1", "n1", lbl("app", "web")),
				pdb("c", "max-0pct", app("web"), 0, 2, 2, 2, maxUnavailable(intstr.FromString("0%"))),
				pod("c", "web-1", "n1", lbl("app", "web")),
				pdb("d", "max-25pct", app("web"), 1, 4, 4, 3, maxUnavailable(intstr.FromString("25%"))),
				pod("d", "web-1", "n1", lbl("app", "web")),
				pod("d", "web-2", "n1", lbl("app", "web")),
			},
			metrics: append([]string{"upgradeguard_pdb_unsatisfiable"}, nodeMetrics...),
			want: slices.Concat(
				nodeSeries("n1", 7, 0, 0, 0),
				[]string{
					blocked("n1", "a", "min-50pct", 1),
					blocked("n1", "b", "min-100pct", 1),
					blocked("n1", "c", "max-0pct", 1),
					blocked("n1", "d", "max-25pct", 1),
					`upgradeguard_pdb_unsatisfiable{namespace="a",pdb="min-50pct"} 0`,
					`upgradeguard_pdb_unsatisfiable{namespace="b",pdb="min-100pct"} 1`,
					`upgradeguard_pdb_unsatisfiable{namespace="c",pdb="max-0pct"} 1`,
					`upgradeguard_pdb_unsatisfiable{namespace="d",pdb="max-25pct"} 0`,
				},
			),
		},
		{
			name: "matchExpressions",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "front", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}},
					{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"batch"}},
					{Key: "track", Operator: metav1.LabelSelectorOpExists},
					{Key: "legacy", Operator: metav1.LabelSelectorOpDoesNotExist},
				}}, 0, 2, 2, 2),
				pod(ns, "web", "n1", lbl("app", "web", "track", "stable")),
				pod(ns, "api", "n1", lbl("app", "api", "track", "canary", "tier", "front")),
				pod(ns, "api-batch", "n1", lbl("app", "api", "track", "stable", "tier", "batch")),
				pod(ns, "web-untracked", "n1", lbl("app", "web")),
				pod(ns, "web-legacy", "n1", lbl("app", "web", "track", "stable", "legacy", "yes")),
				pod(ns, "db", "n1", lbl("app", "db", "track", "stable")),
				// Selectors without an equality requirement.
				pdb("jobs", "not-batch", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"batch"}},
				}}, 0, 2, 2, 2),
				pod("jobs", "untiered", "n1", nil),
				pod("jobs", "batch", "n1", lbl("tier", "batch")),
				pdb("tracked", "tracked", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "track", Operator: metav1.LabelSelectorOpExists},
				}}, 0, 2, 2, 2),
				pod("tracked", "canary", "n1", lbl("track", "canary")),
				pod("tracked", "untracked", "n1", lbl("app", "web")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 10, 0, 0, 0),
				[]string{
					blocked("n1", ns, "front", 2),
					blocked("n1", "jobs", "not-batch", 1),
					blocked("n1", "tracked", "tracked", 1),
				},
			),
		},
		{
			name: "a pod under two PDBs is refused under both, whatever their budgets",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "web", app("web"), 5, 6, 6, 1),
				pdb(ns, "front", &metav1.LabelSelector{MatchLabels: lbl("tier", "front")}, 5, 6, 6, 1,
					unhealthyPolicy(policyv1.AlwaysAllow)),
				pod(ns, "both", "n1", lbl("app", "web", "tier", "front")),
				pod(ns, "both-not-ready", "n1", lbl("app", "web", "tier", "front"), notReady),
				pod(ns, "web-only", "n1", lbl("app", "web")),
				pod(ns, "front-only", "n1", lbl("app", "api", "tier", "front")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 4, 0, 0, 0),
				[]string{
					blockedFor("n1", ns, "web", ReasonMultiplePDBs, 2), blockedFor("n1", ns, "front", ReasonMultiplePDBs, 2),
					// web-only and front-only each fit their budget of 5.
				},
			),
		},
		{
			// Two budgets over one pod: the Eviction API answers 500 to both pods,
			// though each budget allows a disruption.
			name: "web-pdb and front-pdb select both pods of the node: 2 blocked, multiple_pdbs",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "web-pdb", app("web"), 1, 2, 2, 1, maxUnavailable(intstr.FromInt32(1))),
				pdb(ns, "front-pdb", &metav1.LabelSelector{MatchLabels: lbl("tier", "front")}, 1, 2, 2, 1,
					maxUnavailable(intstr.FromInt32(1))),
				pod(ns, "web-1", "n1", lbl("app", "web", "tier", "front")),
				pod(ns, "web-2", "n1", lbl("app", "web", "tier", "front")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 2, 0, 0, 0),
				[]string{
					blockedFor("n1", ns, "web-pdb", ReasonMultiplePDBs, 2),
					blockedFor("n1", ns, "front-pdb", ReasonMultiplePDBs, 2),
				},
			),
		},
		{
			// A pod under two PDBs and one under one budget on the same node:
			// both reasons under the same PDB.
			name: "reasons side by side under one PDB",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "web", app("web"), 1, 4, 4, 3),
				pdb(ns, "front", &metav1.LabelSelector{MatchLabels: lbl("tier", "front")}, 1, 2, 2, 1),
				pod(ns, "both", "n1", lbl("app", "web", "tier", "front")),
				pod(ns, "web-1", "n1", lbl("app", "web")),
				pod(ns, "web-2", "n1", lbl("app", "web")),
				pod(ns, "web-3", "n1", lbl("app", "web")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 4, 0, 0, 0),
				[]string{
					blockedFor("n1", ns, "web", ReasonMultiplePDBs, 1),
					blocked("n1", ns, "web", 2),
					blockedFor("n1", ns, "front", ReasonMultiplePDBs, 1),
				},
			),
		},
		{
			name: "unowned and emptyDir pods",
			objs: []runtime.Object{
				node("n1"),
				pod(ns, "plain", "n1", nil),
				pod(ns, "bare", "n1", nil, unowned),
				pod(ns, "cache", "n1", nil, withEmptyDir),
				pod(ns, "bare-cache", "n1", nil, unowned, withEmptyDir),
			},
			metrics: nodeMetrics,
			want:    nodeSeries("n1", 4, 2, 2, 1),
		},
		{
			name: "DaemonSet, mirror and finished pods are not evicted",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "all", &metav1.LabelSelector{}, 0, 5, 5, 5, maxUnavailable(intstr.FromInt32(0))),
				pod(ns, "ds", "n1", nil, ownedBy("DaemonSet"), withEmptyDir),
				pod(ns, "static", "n1", nil, mirror),
				pod(ns, "job-done", "n1", nil, ownedBy("Job"), phase(corev1.PodSucceeded), unowned),
				pod(ns, "job-failed", "n1", nil, ownedBy("Job"), phase(corev1.PodFailed), withEmptyDir),
				pod(ns, "unscheduled", "", nil),
			},
			metrics: nodeMetrics,
			want:    nodeSeries("n1", 0, 0, 0, 1),
		},
		{
			name: "Pending and terminating pods are never blocked",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "web", app("web"), 0, 3, 3, 3, maxUnavailable(intstr.FromInt32(0))),
				pdb(ns, "web-too", app("web"), 0, 3, 3, 3, maxUnavailable(intstr.FromInt32(0))),
				pod(ns, "pending", "n1", lbl("app", "web"), phase(corev1.PodPending), notReady),
				pod(ns, "terminating", "n1", lbl("app", "web"), deleting),
			},
			metrics: nodeMetrics,
			want:    nodeSeries("n1", 2, 0, 0, 1),
		},
		{
			name: "not-ready pods under each unhealthy-pod eviction policy",
			objs: []runtime.Object{
				node("n1"),
				// AlwaysAllow: the not-ready pod goes, even with no budget left.
				pdb("always", "app", app("app"), 0, 3, 1, 2, unhealthyPolicy(policyv1.AlwaysAllow)),
				pod("always", "not-ready", "n1", lbl("app", "app"), notReady),
				// IfHealthyBudget, healthy enough: the not-ready pod goes, the Ready one is refused.
				pdb("healthy", "app", app("app"), 0, 3, 2, 2, unhealthyPolicy(policyv1.IfHealthyBudget)),
				pod("healthy", "not-ready", "n1", lbl("app", "app"), notReady),
				pod("healthy", "ready", "n1", lbl("app", "app")),
				// IfHealthyBudget, not healthy enough: refused.
				pdb("unhealthy", "app", app("app"), 0, 3, 1, 2, unhealthyPolicy(policyv1.IfHealthyBudget)),
				pod("unhealthy", "not-ready", "n1", lbl("app", "app"), notReady),
				// No policy is IfHealthyBudget.
				pdb("unset", "app", app("app"), 0, 3, 1, 2),
				pod("unset", "not-ready", "n1", lbl("app", "app"), notReady),
				// desiredHealthy 0 disables the unhealthy shortcut: the
				// not-ready pods take from disruptionsAllowed like Ready ones.
				pdb("zero", "app", app("app"), 1, 2, 1, 0, maxUnavailable(intstr.FromString("100%"))),
				pod("zero", "not-ready-1", "n1", lbl("app", "app"), notReady),
				pod("zero", "not-ready-2", "n1", lbl("app", "app"), notReady),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 7, 0, 0, 0),
				[]string{
					blocked("n1", "healthy", "app", 1),
					blocked("n1", "unhealthy", "app", 1),
					blocked("n1", "unset", "app", 1),
					blocked("n1", "zero", "app", 1),
				},
			),
		},
		{
			name: "a PDB with observedGeneration behind refuses its pods",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "web", app("web"), 5, 6, 6, 1, generation(3, 2), unhealthyPolicy(policyv1.AlwaysAllow)),
				pod(ns, "web-1", "n1", lbl("app", "web")),
				pod(ns, "web-2", "n1", lbl("app", "web")),
				// The unhealthy-pod shortcut comes before the generation check.
				pod(ns, "web-not-ready", "n1", lbl("app", "web"), notReady),
			},
			metrics: append(slices.Clone(pdbMetrics), nodeMetrics...),
			want: slices.Concat(
				pdbSeries(ns, "web", 5, 6, 6, 1, 0),
				nodeSeries("n1", 3, 0, 0, 0),
				[]string{blockedFor("n1", ns, "web", ReasonStatusStale, 2)},
			),
		},
		{
			// A stale budget status: a budget that allows a disruption, but whose
			// status lags its spec: the API answers 429 to the pod.
			name: "one PDB with observedGeneration < generation: status_stale",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "web-pdb", app("web"), 1, 2, 2, 1, maxUnavailable(intstr.FromInt32(1)), generation(2, 1)),
				pod(ns, "web-1", "n1", lbl("app", "web")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 1, 0, 0, 0),
				[]string{blockedFor("n1", ns, "web-pdb", ReasonStatusStale, 1)},
			),
		},
		{
			name: "a negative disruptionsAllowed refuses every pod that needs it",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "web", app("web"), -1, 3, 2, 3),
				pod(ns, "web-1", "n1", lbl("app", "web")),
				pod(ns, "web-2", "n1", lbl("app", "web")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 2, 0, 0, 0),
				[]string{blocked("n1", ns, "web", 2)},
			),
		},
		{
			name: "nil selector matches nothing, empty selector its whole namespace",
			objs: []runtime.Object{
				node("n1"),
				pdb("a", "nil", nil, 0, 0, 0, 0, maxUnavailable(intstr.FromInt32(0))),
				pod("a", "web", "n1", lbl("app", "web")),
				pdb("b", "empty", &metav1.LabelSelector{}, 1, 3, 3, 2),
				pod("b", "web", "n1", lbl("app", "web")),
				pod("b", "db", "n1", lbl("app", "db")),
				pod("b", "unlabelled", "n1", nil),
				pod("c", "web", "n1", lbl("app", "web")),
			},
			metrics: nodeMetrics,
			want: slices.Concat(
				nodeSeries("n1", 5, 0, 0, 0),
				[]string{blocked("n1", "b", "empty", 2)},
			),
		},
		{
			name: "a selector that does not parse matches nothing and fails the scrape",
			objs: []runtime.Object{
				node("n1"),
				pdb(ns, "bad", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: "Bogus", Values: []string{"web"}},
				}}, 0, 1, 1, 1, maxUnavailable(intstr.FromInt32(0))),
				pod(ns, "web", "n1", lbl("app", "web")),
			},
			metrics: append(slices.Clone(pdbMetrics), nodeMetrics...),
			want: slices.Concat(
				pdbSeries(ns, "bad", 0, 1, 1, 1, 1),
				nodeSeries("n1", 1, 0, 0, 1),
			),
			wantErr: `parsing the selector of PodDisruptionBudget shop/bad`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, fake.NewClientset(tc.objs...))
			err := compare(t, e.collector, tc.want, tc.metrics...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Update returned %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Update returned %v, want an error containing %q", err, tc.wantErr)
			}
			problems, err := testutil.CollectAndLint(collectors.AsPrometheus(e.collector, nil))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				t.Errorf("lint: %s: %s", p.Metric, p.Text)
			}
		})
	}
}

// waitFor polls until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeletionsAndUpdates(t *testing.T) {
	ns := "shop"
	e := start(t, fake.NewClientset(
		node("n1"), node("n2"),
		pdb(ns, "web", app("web"), 0, 2, 2, 2),
		pdb(ns, "db", app("db"), 1, 2, 2, 1),
		pod(ns, "web-1", "n1", lbl("app", "web")),
		pod(ns, "db-1", "n1", lbl("app", "db")),
		pod(ns, "web-2", "n2", lbl("app", "web")),
	))
	all := append(slices.Clone(pdbMetrics), nodeMetrics...)
	if err := compare(t, e.collector, slices.Concat(
		pdbSeries(ns, "web", 0, 2, 2, 2, 0),
		pdbSeries(ns, "db", 1, 2, 2, 1, 0),
		nodeSeries("n1", 2, 0, 0, 0),
		nodeSeries("n2", 1, 0, 0, 0),
		[]string{blocked("n1", ns, "web", 1), blocked("n2", ns, "web", 1)},
	), all...); err != nil {
		t.Errorf("Update returned %v", err)
	}

	ctx := context.Background()
	if err := e.client.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.client.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The new selector takes web's pods under db's budget, which allows one
	// of them. The fake clientset does not bump resourceVersions; the API
	// server does, and the selector cache relies on it.
	db := pdb(ns, "db", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "db"}},
	}}, 1, 3, 3, 2)
	db.ResourceVersion = "2"
	if _, err := e.client.PolicyV1().PodDisruptionBudgets(ns).Update(ctx, db, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the informers see the deletions and the update", func() bool {
		_, nodeExists, _ := e.nodes.GetStore().GetByKey("n2")
		_, webExists, _ := e.pdbs.GetStore().GetByKey(ns + "/web")
		obj, _, _ := e.pdbs.GetStore().GetByKey(ns + "/db")
		return !nodeExists && !webExists && obj != nil && obj.(*policyv1.PodDisruptionBudget).ResourceVersion == "2"
	})

	if err := compare(t, e.collector, slices.Concat(
		pdbSeries(ns, "db", 1, 3, 3, 2, 0),
		nodeSeries("n1", 2, 0, 0, 0),
		[]string{blocked("n1", ns, "db", 1)},
	), all...); err != nil {
		t.Errorf("Update returned %v", err)
	}
	e.collector.mu.Lock()
	defer e.collector.mu.Unlock()
	if _, ok := e.collector.selectors[pdbKey{ns, "web"}]; ok || len(e.collector.selectors) != 1 {
		t.Errorf("selector cache holds %v, want only shop/db", e.collector.selectors)
	}
}

// TestUnhealthyInformer checks that a scrape while the pod informer cannot
// list reports the error and still sends what the other informers hold.
func TestUnhealthyInformer(t *testing.T) {
	client := fake.NewClientset(
		node("n1"),
		pdb("shop", "web", app("web"), 0, 2, 2, 2),
		pod("shop", "web-1", "n1", lbl("app", "web")),
	)
	failure := errors.New("connection refused")
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, failure
	})
	client.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, nil, failure
	})
	f := kube.NewInformers(client, kube.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	nodes, pods, pdbs := f.Nodes(), f.Pods(), f.PodDisruptionBudgets()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx)
	waitFor(t, "nodes and PDBs sync", func() bool { return nodes.HasSynced() && pdbs.HasSynced() })

	err := compare(t, New(nodes, pods, pdbs), slices.Concat(
		pdbSeries("shop", "web", 0, 2, 2, 2, 0),
		nodeSeries("n1", 0, 0, 0, 1),
	), append(slices.Clone(pdbMetrics), nodeMetrics...)...)
	if err == nil || !strings.Contains(err.Error(), "pods informer") {
		t.Errorf("Update returned %v, want the pods informer's error", err)
	}
}

// TestConcurrentScrapes runs scrapes (Update, then WriteMetrics parsed back)
// in parallel while pods come and go, for the race detector: they share
// the selector cache and the rendered series.
func TestConcurrentScrapes(t *testing.T) {
	e := start(t, fake.NewClientset(
		node("n1"),
		pdb("shop", "web", app("web"), 0, 2, 2, 2),
		pod("shop", "web-1", "n1", lbl("app", "web")),
	))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 20 {
			p := pod("shop", fmt.Sprintf("web-%d", i+2), "n1", lbl("app", "web"))
			if _, err := e.client.CoreV1().Pods("shop").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if err := e.collector.Update(nil); err != nil {
					t.Error(err)
				}
				if _, err := metricstore.Gatherer(e.collector).Gather(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// TestWriteMetrics checks the text WriteMetrics writes, byte for byte: each
// family once, its header then its series; with NodesOnly no PDB family;
// with ConstLabels every series ending with them.
func TestWriteMetrics(t *testing.T) {
	objs := []runtime.Object{
		node("n1"),
		pdb("shop", "web", app("web"), 0, 1, 1, 1),
		pod("shop", "web-1", "n1", lbl("app", "web")),
	}
	header := func(name string) string {
		return fmt.Sprintf("# HELP %s %s\n# TYPE %s gauge\n", name, help[name], name)
	}
	pdbText := header("upgradeguard_pdb_disruptions_allowed") + `upgradeguard_pdb_disruptions_allowed{namespace="shop",pdb="web"%[1]s} 0
` + header("upgradeguard_pdb_expected_pods") + `upgradeguard_pdb_expected_pods{namespace="shop",pdb="web"%[1]s} 1
` + header("upgradeguard_pdb_current_healthy") + `upgradeguard_pdb_current_healthy{namespace="shop",pdb="web"%[1]s} 1
` + header("upgradeguard_pdb_desired_healthy") + `upgradeguard_pdb_desired_healthy{namespace="shop",pdb="web"%[1]s} 1
` + header("upgradeguard_pdb_unsatisfiable") + `upgradeguard_pdb_unsatisfiable{namespace="shop",pdb="web"%[1]s} 0
`
	nodeText := header("upgradeguard_node_evictable_pods") + `upgradeguard_node_evictable_pods{node="n1"%[1]s} 1
` + header("upgradeguard_node_unmanaged_pods") + `upgradeguard_node_unmanaged_pods{node="n1"%[1]s} 0
` + header("upgradeguard_node_local_storage_pods") + `upgradeguard_node_local_storage_pods{node="n1"%[1]s} 0
` + header("upgradeguard_node_drain_blocked_pods") + `upgradeguard_node_drain_blocked_pods{namespace="shop",node="n1",pdb="web",reason="budget_exhausted"%[1]s} 1
` + header("upgradeguard_node_drainable") + `upgradeguard_node_drainable{node="n1"%[1]s} 0
`
	const cluster = `,cluster="prod \"eu\""`
	for _, tc := range []struct {
		name string
		opts []Option
		want string
	}{
		{"default", nil, fmt.Sprintf(pdbText+nodeText, "")},
		{"NodesOnly", []Option{NodesOnly()}, fmt.Sprintf(nodeText, "")},
		{"ConstLabels", []Option{ConstLabels(metricstore.ConstLabels(map[string]string{"cluster": `prod "eu"`}))},
			fmt.Sprintf(pdbText+nodeText, cluster)},
		{"NodesOnly and ConstLabels", []Option{NodesOnly(), ConstLabels(cluster)}, fmt.Sprintf(nodeText, cluster)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, fake.NewClientset(objs...))
			c := New(e.nodes, e.pods, e.pdbs, tc.opts...)
			// Handlers added to started informers are replayed their
			// objects; the informers count as synced once they were.
			var err error
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if err = c.Update(nil); err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := c.WriteMetrics(&buf); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tc.want {
				t.Errorf("wrote:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
