package pdb

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/upgradeguard/upgradeguard/internal/kube/kubetest"
)

// TestHeapProfile writes a heap profile of the stores filled with
// kubetest.Production and the collector's state after its first scrape, to
// the file UPGRADEGUARD_HEAP_PROFILE names, and logs the heap in use by
// each. It is skipped without that variable.
func TestHeapProfile(t *testing.T) {
	path := os.Getenv("UPGRADEGUARD_HEAP_PROFILE")
	if path == "" {
		t.Skip("UPGRADEGUARD_HEAP_PROFILE is not set")
	}
	inuse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	base := inuse()
	f := production(t)
	stores := inuse()
	c := New(f.Nodes(), f.Pods(), f.PodDisruptionBudgets())
	_ = c.Update(nil)
	state := inuse()
	var w countingWriter
	if err := c.WriteMetrics(&w); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v: heap in use by the stores %.1f MiB, by the pdb collector's state %.1f MiB (%d series, %.1f MiB of text)",
		kubetest.Production, float64(stores-base)/(1<<20), float64(state-stores)/(1<<20), w.series, float64(w.bytes)/(1<<20))
	runtime.KeepAlive(c)
	runtime.KeepAlive(f)
}
