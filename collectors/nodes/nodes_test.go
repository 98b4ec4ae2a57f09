package nodes

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func node(name string, ready corev1.ConditionStatus, mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:              name,
			CreationTimestamp: metav1.NewTime(now.Add(-time.Hour)),
			Labels: map[string]string{
				kube.LabelZone:              "eu-west-1a",
				kube.LabelInstanceType:      "m5.large",
				kube.LabelKopsInstanceGroup: "nodes-a",
				"unrelated":                 "dropped",
			},
		},
		Spec: corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/i-0" + name},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
		},
	}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse},
			{Type: corev1.NodeReady, Status: ready},
		}
	}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func lease(name string, age time.Duration, duration int32) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kube.NodeLeaseNamespace},
		Spec: coordinationv1.LeaseSpec{
			RenewTime:            &metav1.MicroTime{Time: now.Add(-age)},
			LeaseDurationSeconds: &duration,
		},
	}
}

type fixture struct {
	client *fake.Clientset
	inf    *kube.Informers
	c      *Collector
}

func start(t *testing.T, opts Options, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	if opts.Now == nil {
		opts.Now = func() time.Time { return now }
	}
	inf := kube.NewInformers(client, kube.Options{NodeLabels: opts.NodeLabels()}, slog.New(slog.DiscardHandler))
	c, err := New(inf.Nodes(), inf.NodeLeases(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	inf.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := inf.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	return &fixture{client: client, inf: inf, c: c}
}

func (f *fixture) compare(t *testing.T, want string, names ...string) {
	t.Helper()
	var updateErr error
	pc := collectors.AsPrometheus(f.c, func(err error) { updateErr = err })
	if err := testutil.CollectAndCompare(pc, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if updateErr != nil {
		t.Errorf("Update: %v", updateErr)
	}
}

// eventually retries cond until it holds: informers apply fake-client writes asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const header = `
# HELP upgradeguard_node_ready Whether the node's Ready condition is True (1) or False or Unknown (0).
# TYPE upgradeguard_node_ready gauge
`

func TestReadiness(t *testing.T) {
	cases := []struct {
		name  string
		objs  []runtime.Object
		want  string
		names []string
	}{
		{
			name: "ready, not ready, unknown and no condition",
			objs: []runtime.Object{
				node("a", corev1.ConditionTrue),
				node("b", corev1.ConditionFalse),
				node("c", corev1.ConditionUnknown),
				node("d", ""),
			},
			want: header + `
upgradeguard_node_ready{node="a"} 1
upgradeguard_node_ready{node="b"} 0
upgradeguard_node_ready{node="c"} 0
upgradeguard_node_ready{node="d"} 0
`,
			names: []string{"upgradeguard_node_ready"},
		},
		{
			// At first sight (the exporter's start) renewTime counts at face
			// value, no later than now.
			name: "fresh lease, stale lease, lease from the future, no lease, lease never renewed",
			objs: []runtime.Object{
				node("fresh", corev1.ConditionTrue), lease("fresh", 5*time.Second, 40),
				node("stale", corev1.ConditionTrue), lease("stale", 95*time.Second, 40),
				node("ahead", corev1.ConditionTrue), lease("ahead", -time.Minute, 40),
				node("nolease", corev1.ConditionTrue),
				node("never", corev1.ConditionTrue),
				&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "never", Namespace: kube.NodeLeaseNamespace}},
				lease("orphan-lease", time.Second, 40),
			},
			want: `
# HELP upgradeguard_node_heartbeat_age_seconds Seconds since the exporter saw the kubelet renew the node's Lease in kube-node-lease, on the exporter's own clock; never negative.
# TYPE upgradeguard_node_heartbeat_age_seconds gauge
upgradeguard_node_heartbeat_age_seconds{node="ahead"} 0
upgradeguard_node_heartbeat_age_seconds{node="fresh"} 5
upgradeguard_node_heartbeat_age_seconds{node="stale"} 95
# HELP upgradeguard_node_lease_duration_seconds Lease duration the kubelet declares on the node's Lease; a heartbeat older than this is overdue.
# TYPE upgradeguard_node_lease_duration_seconds gauge
upgradeguard_node_lease_duration_seconds{node="ahead"} 40
upgradeguard_node_lease_duration_seconds{node="fresh"} 40
upgradeguard_node_lease_duration_seconds{node="stale"} 40
`,
			names: []string{"upgradeguard_node_heartbeat_age_seconds", "upgradeguard_node_lease_duration_seconds"},
		},
		{
			name: "info, cordon and creation time",
			objs: []runtime.Object{
				node("kops", corev1.ConditionTrue, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
				node("eks", corev1.ConditionTrue, func(n *corev1.Node) {
					n.Labels = map[string]string{
						kube.LabelZoneLegacy:         "eu-west-1b",
						kube.LabelInstanceTypeLegacy: "c5.xlarge",
						kube.LabelEKSNodegroup:       "ng-1",
					}
				}),
				node("custom", corev1.ConditionTrue, func(n *corev1.Node) {
					n.Labels["example.com/pool"] = "pool-x"
					n.Spec.ProviderID = "kwok://custom"
				}),
			},
			want: `
# HELP upgradeguard_node_info Information about the node: kubelet version, instance type, zone, node group and EC2 instance ID.
# TYPE upgradeguard_node_info gauge
upgradeguard_node_info{instance_id="",instance_type="m5.large",kubelet_version="v1.37.2",node="custom",nodegroup="pool-x",zone="eu-west-1a"} 1
upgradeguard_node_info{instance_id="i-0eks",instance_type="c5.xlarge",kubelet_version="v1.37.2",node="eks",nodegroup="ng-1",zone="eu-west-1b"} 1
upgradeguard_node_info{instance_id="i-0kops",instance_type="m5.large",kubelet_version="v1.37.2",node="kops",nodegroup="nodes-a",zone="eu-west-1a"} 1
# HELP upgradeguard_node_unschedulable Whether the node is cordoned (spec.unschedulable).
# TYPE upgradeguard_node_unschedulable gauge
upgradeguard_node_unschedulable{node="custom"} 0
upgradeguard_node_unschedulable{node="eks"} 0
upgradeguard_node_unschedulable{node="kops"} 1
# HELP upgradeguard_node_created_timestamp_seconds Unix time when the node object was created.
# TYPE upgradeguard_node_created_timestamp_seconds gauge
upgradeguard_node_created_timestamp_seconds{node="custom"} 1.795518e+09
upgradeguard_node_created_timestamp_seconds{node="eks"} 1.795518e+09
upgradeguard_node_created_timestamp_seconds{node="kops"} 1.795518e+09
`,
			names: []string{"upgradeguard_node_info", "upgradeguard_node_unschedulable", "upgradeguard_node_created_timestamp_seconds"},
		},
		{
			// Nodes on their way out are told apart by
			// their taints (cluster-autoscaler's, Karpenter's) and their
			// deletionTimestamp.
			name: "taints and deletion",
			objs: []runtime.Object{
				node("autoscaled", corev1.ConditionFalse, func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{
						{Key: "ToBeDeletedByClusterAutoscaler", Value: "1795518000", Effect: corev1.TaintEffectNoSchedule},
						{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: now}},
					}
				}),
				node("karpenter", corev1.ConditionTrue, func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "karpenter.sh/disrupted", Effect: corev1.TaintEffectNoSchedule}}
				}),
				node("deleting", corev1.ConditionTrue, func(n *corev1.Node) {
					n.DeletionTimestamp = &metav1.Time{Time: now.Add(-time.Minute)}
					n.Finalizers = []string{"karpenter.sh/termination"}
				}),
				node("plain", corev1.ConditionTrue),
			},
			want: `
# HELP upgradeguard_node_spec_taint A taint of the node (spec.taints), one series of value 1 per taint, as kube-state-metrics' kube_node_spec_taint.
# TYPE upgradeguard_node_spec_taint gauge
upgradeguard_node_spec_taint{effect="NoExecute",key="node.kubernetes.io/unreachable",node="autoscaled",value=""} 1
upgradeguard_node_spec_taint{effect="NoSchedule",key="ToBeDeletedByClusterAutoscaler",node="autoscaled",value="1795518000"} 1
upgradeguard_node_spec_taint{effect="NoSchedule",key="karpenter.sh/disrupted",node="karpenter",value=""} 1
# HELP upgradeguard_node_deletion_timestamp_seconds Unix time of the node object's deletionTimestamp: the node is being deleted. Only for such nodes.
# TYPE upgradeguard_node_deletion_timestamp_seconds gauge
upgradeguard_node_deletion_timestamp_seconds{node="deleting"} 1.79552154e+09
`,
			names: []string{"upgradeguard_node_spec_taint", "upgradeguard_node_deletion_timestamp_seconds"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, Options{NodegroupLabel: "example.com/pool"}, tc.objs...)
			f.compare(t, tc.want, tc.names...)
		})
	}
}

func setReady(t *testing.T, f *fixture, name string, status corev1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	n, err := f.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			n.Status.Conditions[i].Status = status
		}
	}
	if _, err := f.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node "+name+" Ready="+string(status), func() bool {
		obj, ok, _ := f.inf.Nodes().GetStore().GetByKey(name)
		return ok && obj.(*kube.Node).Ready == status
	})
}

func TestFlappingAndDeletion(t *testing.T) {
	f := start(t, Options{},
		node("flappy", corev1.ConditionTrue), lease("flappy", time.Second, 40),
		node("steady", corev1.ConditionTrue), lease("steady", time.Second, 40))
	setReady(t, f, "flappy", corev1.ConditionFalse)
	setReady(t, f, "flappy", corev1.ConditionTrue)
	setReady(t, f, "flappy", corev1.ConditionUnknown)

	// An update that does not touch Ready is not a transition.
	ctx := context.Background()
	n, _ := f.client.CoreV1().Nodes().Get(ctx, "steady", metav1.GetOptions{})
	n.Spec.Unschedulable = true
	if _, err := f.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "steady cordoned", func() bool {
		obj, _, _ := f.inf.Nodes().GetStore().GetByKey("steady")
		return obj.(*kube.Node).Unschedulable
	})

	f.compare(t, `
# HELP upgradeguard_node_ready_transitions_total Changes of the node's Ready condition status observed since the exporter started.
# TYPE upgradeguard_node_ready_transitions_total counter
upgradeguard_node_ready_transitions_total{node="flappy"} 3
upgradeguard_node_ready_transitions_total{node="steady"} 0
`+header+`
upgradeguard_node_ready{node="flappy"} 0
upgradeguard_node_ready{node="steady"} 1
`, "upgradeguard_node_ready_transitions_total", "upgradeguard_node_ready")

	if err := f.client.CoreV1().Nodes().Delete(ctx, "flappy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "flappy deleted", func() bool {
		_, ok, _ := f.inf.Nodes().GetStore().GetByKey("flappy")
		return !ok
	})
	// The Lease of a deleted node lingers until garbage-collected; its
	// series go with the node.
	f.compare(t, `
# HELP upgradeguard_node_heartbeat_age_seconds Seconds since the exporter saw the kubelet renew the node's Lease in kube-node-lease, on the exporter's own clock; never negative.
# TYPE upgradeguard_node_heartbeat_age_seconds gauge
upgradeguard_node_heartbeat_age_seconds{node="steady"} 1
# HELP upgradeguard_node_ready_transitions_total Changes of the node's Ready condition status observed since the exporter started.
# TYPE upgradeguard_node_ready_transitions_total counter
upgradeguard_node_ready_transitions_total{node="steady"} 0
`+header+`
upgradeguard_node_ready{node="steady"} 1
`, "upgradeguard_node_heartbeat_age_seconds", "upgradeguard_node_ready_transitions_total", "upgradeguard_node_ready")
}

func TestLint(t *testing.T) {
	f := start(t, Options{}, node("a", corev1.ConditionTrue), lease("a", time.Second, 40))
	problems, err := testutil.CollectAndLint(collectors.AsPrometheus(f.c, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestReadLabelsKept: every label the collector reads is one the node
// informer keeps whatever its options (kube.WellKnownNodeLabels).
func TestReadLabelsKept(t *testing.T) {
	for _, l := range []string{kube.LabelZone, kube.LabelZoneLegacy, kube.LabelInstanceType, kube.LabelInstanceTypeLegacy, kube.LabelKopsInstanceGroup, kube.LabelEKSNodegroup} {
		if !slices.Contains(kube.WellKnownNodeLabels, l) {
			t.Errorf("the collector reads label %s, which kube.WellKnownNodeLabels does not keep", l)
		}
	}
}
