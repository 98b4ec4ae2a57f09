package workloads

import (
	"log/slog"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/kube/kubetest"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkScrape measures one full Update at the production scale of
// kubetest (3,000 Deployments and Services whose EndpointSlices list 150,000
// pods, 300 StatefulSets, 5 DaemonSets) and reports the heap the stripped
// stores take: what the workloads collector's informers add to the
// exporter. The informers never run, so Update's "not synced" error is
// ignored; the computation is the same.
func BenchmarkScrape(b *testing.B) {
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
	c := New(f.EndpointSlices(), f.Deployments(), f.StatefulSets(), f.DaemonSets())
	before := heapInUse()
	if err := kubetest.Production.FillWorkloads(f); err != nil {
		b.Fatal(err)
	}
	stores := heapInUse() - before
	ch := make(chan prometheus.Metric, 4096)
	counted := make(chan int)
	go func() {
		n := 0
		for range ch {
			n++
		}
		counted <- n
	}()
	b.ReportAllocs()
	scrapes := 0
	for b.Loop() {
		_ = c.Update(ch)
		scrapes++
	}
	close(ch)
	b.ReportMetric(float64(<-counted)/float64(scrapes), "metrics/op")
	b.ReportMetric(float64(stores)/(1<<20), "store-MiB")
	runtime.KeepAlive(f)
}
