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

// production fills unstarted informers' stores with kubetest.Production
// (5,000 nodes, 150,000 pods, 3,000 PDBs) of stripped objects. The
// informers never run, so Update reports them unsynced: benchmarks ignore
// its error, the computation is the same.
func production(b testing.TB) *kube.Informers {
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Nodes()
	f.Pods()
	f.PodDisruptionBudgets()
	if err := kubetest.Production.Fill(f, nil); err != nil {
		b.Fatal(err)
	}
	return f
}

// drain counts what is sent on the returned channel until it is closed.
func drain() (chan prometheus.Metric, chan int) {
	ch := make(chan prometheus.Metric, 4096)
	counted := make(chan int)
	go func() {
		n := 0
		for range ch {
			n++
		}
		counted <- n
	}()
	return ch, counted
}

// BenchmarkScrape measures a scrape at kubetest.Production with no event
// since the previous one: the series are sent as rendered.
func BenchmarkScrape(b *testing.B) {
	f := production(b)
	c := New(f.Nodes(), f.Pods(), f.PodDisruptionBudgets())
	ch, counted := drain()
	_ = c.Update(ch) // the first scrape computes everything
	b.ReportAllocs()
	scrapes := 0
	for b.Loop() {
		_ = c.Update(ch)
		scrapes++
	}
	close(ch)
	b.ReportMetric(float64(<-counted)/float64(scrapes+1), "metrics/op")
}

// BenchmarkScrapeAfterPodEvents measures a scrape after 100 pod events
// spread over 100 nodes (a rolling restart's pace between two scrapes).
func BenchmarkScrapeAfterPodEvents(b *testing.B) {
	f := production(b)
	c := New(f.Nodes(), f.Pods(), f.PodDisruptionBudgets())
	ch, counted := drain()
	_ = c.Update(ch)
	pods := f.Pods().GetStore().List()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for range 100 {
			p := pods[(i*kubetest.Production.PodsPerNode*37)%len(pods)]
			c.podEvent(p, p)
			i++
		}
		_ = c.Update(ch)
	}
	close(ch)
	<-counted
}

// BenchmarkBuild measures the first scrape, which computes every PDB and
// node from the stores: what every scrape cost before the series were kept.
func BenchmarkBuild(b *testing.B) {
	f := production(b)
	ch, counted := drain()
	b.ReportAllocs()
	for b.Loop() {
		_ = newCollector(f.Nodes(), f.Pods(), f.PodDisruptionBudgets()).Update(ch)
	}
	close(ch)
	<-counted
}
