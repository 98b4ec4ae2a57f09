package exporter

import (
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/collectors/pdb"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/kube/kubetest"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkScrape measures a whole /metrics scrape (both Kubernetes
// collectors, gathering and text encoding) at 5,000 nodes, 150,000 pods and
// 3,000 PDBs, and reports the heap the stripped informer stores take.
func BenchmarkScrape(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	opts := nodes.Options{}
	f := kube.NewInformers(fake.NewClientset(), kube.Options{NodeLabels: opts.NodeLabels()}, logger)
	nc, err := nodes.New(f.Nodes(), f.NodeLeases(), opts)
	if err != nil {
		b.Fatal(err)
	}
	pc := pdb.New(f.Nodes(), f.Pods(), f.PodDisruptionBudgets())
	before := heapInUse()
	if err := kubetest.Production.Fill(f, opts.NodeLabels()); err != nil {
		b.Fatal(err)
	}
	stores := heapInUse() - before

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewSet(map[string]collectors.Collector{"nodes": nc, "pdb": pc}, logger))
	var samples int
	b.ReportAllocs()
	for b.Loop() {
		mfs, _ := reg.Gather()
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		samples = 0
		for _, mf := range mfs {
			samples += len(mf.Metric)
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(samples), "samples/op")
	b.ReportMetric(float64(stores)/(1<<20), "store-MiB")
}
