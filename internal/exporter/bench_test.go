package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/collectors/pdb"
	"github.com/upgradeguard/upgradeguard/collectors/workloads"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/kube/kubetest"
)

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// discard is an http.ResponseWriter that counts the body's bytes.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// BenchmarkScrape measures a whole /metrics request through the exporter's
// handler (the registry gathered and encoded, then the nodes, pdb and
// workloads collectors' rendered families written), with and without gzip,
// at 5,000 nodes, 150,000 pods, 3,000 PDBs and Deployments. The informers
// run for real over a fake clientset, so the collectors' event handlers
// render every object, as in the exporter. It reports the heap of the
// stores and rendered series, the body's bytes and its series.
//
// UPGRADEGUARD_BENCH_NODES=N sets the node count, keeping the production
// scale's namespaces and apps; with UPGRADEGUARD_BENCH_SHAPE=scale the
// cluster has make bench-scale's proportions instead (20 pods per node, one
// app of 20 pods with a PDB and a Deployment per node, 50 apps per
// namespace), so that sizes compare: how the scrape grows with the cluster.
func BenchmarkScrape(b *testing.B) {
	scale := kubetest.Production
	if v, err := strconv.Atoi(os.Getenv("UPGRADEGUARD_BENCH_NODES")); err == nil && v > 0 {
		scale.Nodes = v
	}
	if os.Getenv("UPGRADEGUARD_BENCH_SHAPE") == "scale" {
		scale = kubetest.Scale{Nodes: scale.Nodes, PodsPerNode: 20, Namespaces: max(1, scale.Nodes/50), AppsPerNamespace: 50}
	}
	logger := slog.New(slog.DiscardHandler)
	objs := scale.Objects()
	client := fake.NewClientset(objs...)
	objs = nil
	before := heapInUse()
	opts := nodes.Options{}
	f := kube.NewInformers(client, kube.Options{NodeLabels: opts.NodeLabels()}, logger)
	nc, err := nodes.New(f.Nodes(), f.NodeLeases(), opts)
	if err != nil {
		b.Fatal(err)
	}
	set := collectors.NewSet(map[string]collectors.Collector{
		"nodes":     nc,
		"pdb":       pdb.New(f.Nodes(), f.Pods(), f.PodDisruptionBudgets()),
		"workloads": workloads.New(f.EndpointSlices(), f.Deployments(), f.StatefulSets(), f.DaemonSets(), workloads.Options{}),
	}, logger)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Minute)
	defer scancel()
	if err := f.WaitForSync(sctx); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(set)
	h := Handler(reg, set.Writers(), func() bool { return true }, logger)
	req := func(enc string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept-Encoding", enc)
		return r
	}
	first := &discard{h: http.Header{}}
	h.ServeHTTP(first, req("identity")) // the first scrape computes the pdb state
	held := heapInUse() - before
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			r := req(enc)
			var w *discard
			b.ReportAllocs()
			for b.Loop() {
				w = &discard{h: http.Header{}}
				h.ServeHTTP(w, r)
			}
			b.ReportMetric(float64(w.n), "body-bytes")
			b.ReportMetric(float64(held)/(1<<20), "held-MiB")
		})
	}
	fmt.Printf("%d nodes: stores and rendered series %.1f MiB, body %d bytes\n", scale.Nodes, float64(held)/(1<<20), first.n)
}
