package pdb

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/kube/kubetest"
)

// BenchmarkScrape measures one full Update at 5,000 nodes, 150,000 pods and
// 3,000 PDBs. The stores are filled directly with stripped objects and the
// informers never run, so Update also reports them unsynced: its error is
// ignored, the computation is the same.
func BenchmarkScrape(b *testing.B) {
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c := New(f.Nodes(), f.Pods(), f.PodDisruptionBudgets())
	if err := kubetest.Production.Fill(f, nil); err != nil {
		b.Fatal(err)
	}
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
		_ = c.Update(ch) // "not synced yet": the informers never ran
		scrapes++
	}
	close(ch)
	b.ReportMetric(float64(<-counted)/float64(scrapes), "metrics/op")
}
