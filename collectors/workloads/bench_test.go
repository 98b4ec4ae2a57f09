package workloads

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

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

// filled returns a collector whose informers' stores hold kubetest's
// production scale (3,000 Deployments and Services whose EndpointSlices list
// 150,000 pods, 300 StatefulSets, 5 DaemonSets), rendered as the informers'
// initial list would render them, with the heap the stripped stores take and
// the heap the rendered series take. The informers never run.
func filled(tb testing.TB) (c *Collector, stores, rendered uint64, renderTime time.Duration) {
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
	c = New(f.EndpointSlices(), f.Deployments(), f.StatefulSets(), f.DaemonSets(), Options{ConstLabels: `,cluster="production"`})
	before := heapInUse()
	if err := kubetest.Production.FillWorkloads(f); err != nil {
		tb.Fatal(err)
	}
	filledHeap := heapInUse()
	// FillWorkloads adds to the stores directly: deliver their objects to
	// the handlers as the initial list does.
	begin := time.Now()
	for _, w := range c.watched {
		for _, obj := range w.informer.GetStore().List() {
			w.handler.OnAdd(obj, true)
		}
	}
	renderTime = time.Since(begin)
	return c, filledHeap - before, heapInUse() - filledHeap, renderTime
}

// BenchmarkScrape measures what a scrape of the workloads collector costs
// at the production scale of kubetest: its Update (the informers' health)
// and writing its rendered series. It reports the heap the stripped stores
// take, the heap the rendered series add, and the time rendering every
// object took (what the informers' handlers spend over the initial list).
// The informers never run, so Update's "not synced" error is ignored.
func BenchmarkScrape(b *testing.B) {
	c, stores, rendered, renderTime := filled(b)
	var n countingWriter
	if err := c.WriteMetrics(&n); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Update(nil)
		if err := c.WriteMetrics(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n.lines), "series+headers")
	b.ReportMetric(float64(n.bytes), "bytes")
	b.ReportMetric(float64(stores)/(1<<20), "store-MiB")
	b.ReportMetric(float64(rendered)/(1<<20), "rendered-MiB")
	b.ReportMetric(float64(renderTime.Milliseconds()), "render-all-ms")
	runtime.KeepAlive(c)
}

// BenchmarkSliceUpdate measures the handler's work for one EndpointSlice
// event at the production scale: its Service re-rendered from its slices.
func BenchmarkSliceUpdate(b *testing.B) {
	c, _, _, _ := filled(b)
	objs := c.endpointSlices.GetStore().List()
	h := c.watched[0].handler
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		obj := objs[i%len(objs)]
		h.OnUpdate(obj, obj)
		i++
	}
}

type countingWriter struct{ lines, bytes int }

func (w *countingWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			w.lines++
		}
	}
	w.bytes += len(p)
	return len(p), nil
}
