package nodes

import (
	"io"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/kube/kubetest"
)

// benchCollector returns a collector over 5,000 nodes and their Leases as
// kubetest builds them, rendered by its handlers as the informers would
// deliver them (kubetest fills the stores without running the informers).
func benchCollector(b *testing.B) *Collector {
	b.Helper()
	opts := Options{ConstLabels: `,cluster="prod"`}
	f := kube.NewInformers(fake.NewClientset(), kube.Options{NodeLabels: opts.NodeLabels()}, slog.New(slog.DiscardHandler))
	c, err := New(f.Nodes(), f.NodeLeases(), opts)
	if err != nil {
		b.Fatal(err)
	}
	scale := kubetest.Scale{Nodes: 5000, PodsPerNode: 1, Namespaces: 1, AppsPerNamespace: 1}
	if err := scale.Fill(f, opts.NodeLabels()); err != nil {
		b.Fatal(err)
	}
	for _, obj := range f.Nodes().GetStore().List() {
		c.onNode(nil, obj)
	}
	for _, obj := range f.NodeLeases().GetStore().List() {
		c.onLease(obj)
	}
	return c
}

// BenchmarkWriteMetrics is the collector's share of a scrape at 5,000 nodes:
// writing the rendered series, the heartbeat ages computed on the way.
func BenchmarkWriteMetrics(b *testing.B) {
	c := benchCollector(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteMetrics(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLeaseRenewal is the watch-time cost of one kubelet renewal, which
// at 5,000 nodes renewing every 10 s comes 500 times a second.
func BenchmarkLeaseRenewal(b *testing.B) {
	c := benchCollector(b)
	objs := c.leases.GetStore().List()
	leases := make([]*kube.Lease, len(objs))
	for i, o := range objs {
		leases[i] = o.(*kube.Lease).DeepCopyObject().(*kube.Lease)
	}
	renew := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l := leases[i%len(leases)]
		renew = renew.Add(time.Millisecond)
		l.RenewTime = metav1.MicroTime{Time: renew}
		c.onLease(l)
		i++
	}
}

// BenchmarkNodeUpdate is the watch-time cost of one node update.
func BenchmarkNodeUpdate(b *testing.B) {
	c := benchCollector(b)
	nodes := c.nodes.GetStore().List()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		n := nodes[i%len(nodes)]
		c.onNode(n, n)
		i++
	}
}
