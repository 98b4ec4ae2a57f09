package nodes

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// eventuallyCompare scrapes until the named families are want: the
// informers deliver the fake client's writes asynchronously.
func (f *fixture) eventuallyCompare(t *testing.T, when, want string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := testutil.CollectAndCompare(collectors.AsPrometheus(f.c, nil), strings.NewReader(want), names...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", when, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	readyHelp = `# HELP upgradeguard_node_ready Whether the node's Ready condition is True (1) or False or Unknown (0).
# TYPE upgradeguard_node_ready gauge
`
	taintHelp = `# HELP upgradeguard_node_spec_taint A taint of the node (spec.taints), one series of value 1 per taint, as kube-state-metrics' kube_node_spec_taint.
# TYPE upgradeguard_node_spec_taint gauge
`
	unschedulableHelp = `# HELP upgradeguard_node_unschedulable Whether the node is cordoned (spec.unschedulable).
# TYPE upgradeguard_node_unschedulable gauge
`
	transitionsHelp = `# HELP upgradeguard_node_ready_transitions_total Changes of the node's Ready condition status observed since the exporter started.
# TYPE upgradeguard_node_ready_transitions_total counter
`
	ageHelp = `# HELP upgradeguard_node_heartbeat_age_seconds Seconds since the exporter saw the kubelet renew the node's Lease in kube-node-lease, on the exporter's own clock; never negative.
# TYPE upgradeguard_node_heartbeat_age_seconds gauge
`
	durationHelp = `# HELP upgradeguard_node_lease_duration_seconds Lease duration the kubelet declares on the node's Lease; a heartbeat older than this is overdue.
# TYPE upgradeguard_node_lease_duration_seconds gauge
`
)

// TestEventDrivenRendering changes nodes and Leases through the API and
// checks that each change is rendered: a node added, tainted, cordoned,
// flapping and deleted; a Lease seen before its node, a Lease deleted, a
// Lease outliving its node.
func TestEventDrivenRendering(t *testing.T) {
	ctx := context.Background()
	f := start(t, Options{}, node("a", corev1.ConditionTrue), lease("a", 5*time.Second, 40))
	nodesAPI := f.client.CoreV1().Nodes()
	leasesAPI := f.client.CoordinationV1().Leases(kube.NodeLeaseNamespace)
	update := func(name string, mutate func(*corev1.Node)) {
		t.Helper()
		n, err := nodesAPI.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mutate(n)
		if _, err := nodesAPI.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"upgradeguard_node_ready", "upgradeguard_node_spec_taint", "upgradeguard_node_unschedulable",
		"upgradeguard_node_ready_transitions_total", "upgradeguard_node_heartbeat_age_seconds", "upgradeguard_node_lease_duration_seconds"}

	if _, err := nodesAPI.Create(ctx, node("b", corev1.ConditionFalse), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventuallyCompare(t, "node b added", readyHelp+`
upgradeguard_node_ready{node="a"} 1
upgradeguard_node_ready{node="b"} 0
`+unschedulableHelp+`
upgradeguard_node_unschedulable{node="a"} 0
upgradeguard_node_unschedulable{node="b"} 0
`+transitionsHelp+`
upgradeguard_node_ready_transitions_total{node="a"} 0
upgradeguard_node_ready_transitions_total{node="b"} 0
`+ageHelp+`
upgradeguard_node_heartbeat_age_seconds{node="a"} 5
`+durationHelp+`
upgradeguard_node_lease_duration_seconds{node="a"} 40
`, names...)

	// Tainted, cordoned, then Ready: one transition.
	update("b", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule}}
	})
	update("b", func(n *corev1.Node) { n.Spec.Unschedulable = true })
	setReady(t, f, "b", corev1.ConditionTrue)
	f.eventuallyCompare(t, "node b tainted, cordoned and ready", readyHelp+`
upgradeguard_node_ready{node="a"} 1
upgradeguard_node_ready{node="b"} 1
`+taintHelp+`
upgradeguard_node_spec_taint{effect="NoSchedule",key="node.kubernetes.io/not-ready",node="b",value=""} 1
`+unschedulableHelp+`
upgradeguard_node_unschedulable{node="a"} 0
upgradeguard_node_unschedulable{node="b"} 1
`+transitionsHelp+`
upgradeguard_node_ready_transitions_total{node="a"} 0
upgradeguard_node_ready_transitions_total{node="b"} 1
`, names[:4]...)

	// The taint removed, the node uncordoned.
	update("b", func(n *corev1.Node) { n.Spec.Taints, n.Spec.Unschedulable = nil, false })
	f.eventuallyCompare(t, "node b untainted and uncordoned", unschedulableHelp+`
upgradeguard_node_unschedulable{node="a"} 0
upgradeguard_node_unschedulable{node="b"} 0
`, "upgradeguard_node_spec_taint", "upgradeguard_node_unschedulable")

	// A Lease seen before its node has no series until the node comes.
	if _, err := leasesAPI.Create(ctx, lease("c", 20*time.Second, 60), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Lease c observed", func() bool {
		f.c.mu.Lock()
		defer f.c.mu.Unlock()
		_, ok := f.c.heartbeats.get("c")
		return ok
	})
	f.eventuallyCompare(t, "Lease c without its node", ageHelp+`
upgradeguard_node_heartbeat_age_seconds{node="a"} 5
`+durationHelp+`
upgradeguard_node_lease_duration_seconds{node="a"} 40
`, names[4:]...)
	if _, err := nodesAPI.Create(ctx, node("c", corev1.ConditionTrue), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventuallyCompare(t, "node c added after its Lease", ageHelp+`
upgradeguard_node_heartbeat_age_seconds{node="a"} 5
upgradeguard_node_heartbeat_age_seconds{node="c"} 20
`+durationHelp+`
upgradeguard_node_lease_duration_seconds{node="a"} 40
upgradeguard_node_lease_duration_seconds{node="c"} 60
`, names[4:]...)

	// A Lease deleted takes its series, not its node's; a node deleted
	// takes all its series, its lingering Lease's too.
	if err := leasesAPI.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nodesAPI.Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventuallyCompare(t, "Lease a and node c deleted", readyHelp+`
upgradeguard_node_ready{node="a"} 1
upgradeguard_node_ready{node="b"} 1
`+unschedulableHelp+`
upgradeguard_node_unschedulable{node="a"} 0
upgradeguard_node_unschedulable{node="b"} 0
`+transitionsHelp+`
upgradeguard_node_ready_transitions_total{node="a"} 0
upgradeguard_node_ready_transitions_total{node="b"} 1
`, names...)

	// A node that comes back starts its transitions afresh and finds its
	// Lease again.
	if _, err := nodesAPI.Create(ctx, node("c", corev1.ConditionFalse), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nodesAPI.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventuallyCompare(t, "node c back, node b deleted", readyHelp+`
upgradeguard_node_ready{node="a"} 1
upgradeguard_node_ready{node="c"} 0
`+unschedulableHelp+`
upgradeguard_node_unschedulable{node="a"} 0
upgradeguard_node_unschedulable{node="c"} 0
`+transitionsHelp+`
upgradeguard_node_ready_transitions_total{node="a"} 0
upgradeguard_node_ready_transitions_total{node="c"} 0
`+ageHelp+`
upgradeguard_node_heartbeat_age_seconds{node="c"} 20
`+durationHelp+`
upgradeguard_node_lease_duration_seconds{node="c"} 60
`, names...)
}

// TestLeaseChanges drives the handlers directly: a Lease's duration changed,
// removed and set again, and a Lease first seen without a renewTime.
func TestLeaseChanges(t *testing.T) {
	clock := &fakeClock{t: now}
	c := newUnstarted(t, Options{Now: clock.Now})
	c.onNode(nil, stripped(t, node("n", corev1.ConditionTrue)))
	never := lease("n", 0, 40)
	never.Spec.RenewTime = nil
	c.onLease(stripped(t, never))
	check := func(when, want string) {
		t.Helper()
		if err := testutil.CollectAndCompare(collectors.AsPrometheus(c, nil), strings.NewReader(want),
			"upgradeguard_node_heartbeat_age_seconds", "upgradeguard_node_lease_duration_seconds"); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	check("Lease never renewed", durationHelp+`upgradeguard_node_lease_duration_seconds{node="n"} 40
`)
	l := lease("n", 3*time.Second, 40)
	c.onLease(stripped(t, l))
	clock.Advance(2 * time.Second)
	check("first renewal", ageHelp+`upgradeguard_node_heartbeat_age_seconds{node="n"} 5
`+durationHelp+`upgradeguard_node_lease_duration_seconds{node="n"} 40
`)
	l = l.DeepCopy()
	l.Spec.LeaseDurationSeconds = nil
	c.onLease(stripped(t, l))
	check("duration removed", ageHelp+`upgradeguard_node_heartbeat_age_seconds{node="n"} 5
`)
	l = lease("n", -time.Second, 15) // a renewal, with another duration
	c.onLease(stripped(t, l))
	clock.Advance(time.Second)
	check("renewed with a new duration", ageHelp+`upgradeguard_node_heartbeat_age_seconds{node="n"} 1
`+durationHelp+`upgradeguard_node_lease_duration_seconds{node="n"} 15
`)
	c.onLeaseDelete(cache.DeletedFinalStateUnknown{Key: "kube-node-lease/n", Obj: stripped(t, l)})
	check("Lease deleted while the watch was down", "")
	// Leases of another namespace are not kubelets'.
	other := lease("n", 0, 40)
	other.Namespace = "default"
	c.onLease(stripped(t, other))
	check("Lease in another namespace", "")
}

// stripped returns a node or Lease as its informer's transform stores it,
// for tests that call the handlers themselves.
func stripped(t testing.TB, obj any) any {
	t.Helper()
	var out any
	var err error
	switch obj.(type) {
	case *corev1.Node:
		out, err = kube.StripNode(Options{}.NodeLabels())(obj)
	default:
		out, err = kube.StripLease(obj)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newUnstarted returns a collector whose informers never run, for tests
// that call its handlers themselves.
func newUnstarted(t testing.TB, opts Options) *Collector {
	t.Helper()
	inf := kube.NewInformers(fake.NewClientset(), kube.Options{NodeLabels: opts.NodeLabels()}, slog.New(slog.DiscardHandler))
	c, err := New(inf.Nodes(), inf.NodeLeases(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWriteMetricsText checks the exact text of a scrape: every family once,
// in the order of families, every series ending with the constant labels,
// the heartbeat age on the scrape's clock.
func TestWriteMetricsText(t *testing.T) {
	clock := &fakeClock{t: now}
	c := newUnstarted(t, Options{Now: clock.Now, ConstLabels: `,cluster="prod"`})
	c.onNode(nil, stripped(t, node("a", corev1.ConditionTrue, func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "k", Value: `v"1`, Effect: corev1.TaintEffectNoExecute}}
		n.DeletionTimestamp = &metav1.Time{Time: now}
	})))
	c.onLease(stripped(t, lease("a", time.Second, 40)))
	clock.Advance(1500 * time.Millisecond)
	var buf bytes.Buffer
	if err := c.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	want := readyHelp + `upgradeguard_node_ready{node="a",cluster="prod"} 1
` + unschedulableHelp + `upgradeguard_node_unschedulable{node="a",cluster="prod"} 0
# HELP upgradeguard_node_created_timestamp_seconds Unix time when the node object was created.
# TYPE upgradeguard_node_created_timestamp_seconds gauge
upgradeguard_node_created_timestamp_seconds{node="a",cluster="prod"} 1.795518e+09
# HELP upgradeguard_node_deletion_timestamp_seconds Unix time of the node object's deletionTimestamp: the node is being deleted. Only for such nodes.
# TYPE upgradeguard_node_deletion_timestamp_seconds gauge
upgradeguard_node_deletion_timestamp_seconds{node="a",cluster="prod"} 1.7955216e+09
` + taintHelp + `upgradeguard_node_spec_taint{node="a",key="k",value="v\"1",effect="NoExecute",cluster="prod"} 1
# HELP upgradeguard_node_info Information about the node: kubelet version, instance type, zone, node group and EC2 instance ID.
# TYPE upgradeguard_node_info gauge
upgradeguard_node_info{node="a",kubelet_version="v1.37.2",instance_type="m5.large",zone="eu-west-1a",nodegroup="nodes-a",instance_id="i-0a",cluster="prod"} 1
` + transitionsHelp + `upgradeguard_node_ready_transitions_total{node="a",cluster="prod"} 0
` + ageHelp + `upgradeguard_node_heartbeat_age_seconds{node="a",cluster="prod"} 2.5
` + durationHelp + `upgradeguard_node_lease_duration_seconds{node="a",cluster="prod"} 40
`
	if got := buf.String(); got != want {
		t.Errorf("WriteMetrics wrote:\n%s\nwant:\n%s", got, want)
	}

	// The order of families is the order Describe gives.
	var order []string
	for _, f := range families {
		order = append(order, f.Name)
	}
	var written []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			written = append(written, strings.Fields(name)[0])
		}
	}
	if fmt.Sprint(written) != fmt.Sprint(order) {
		t.Errorf("families written in the order %v, want %v", written, order)
	}
}
