package kube_test

import (
	"log/slog"
	"runtime"
	"testing"
	"unsafe"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/kube/kubetest"
)

// TestPodSize: a stored Pod fits the 128-byte size class. With an embedded
// metav1.ObjectMeta it was 288 bytes, most of them fields never kept.
func TestPodSize(t *testing.T) {
	if size := unsafe.Sizeof(kube.Pod{}); size > 128 {
		t.Errorf("kube.Pod is %d bytes, want at most 128", size)
	}
}

// TestPodStoreHeap bounds the heap the stores hold per pod at 500 nodes and
// 10,000 pods (issue 18's smaller scenario): the pod, its key and index
// entries and its share of the PDBs. 555 bytes with an embedded ObjectMeta,
// 395 without (measured at 40,000 pods).
func TestPodStoreHeap(t *testing.T) {
	const bound = 450 // bytes per pod
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	scale := kubetest.Scale{Nodes: 500, PodsPerNode: 20, Namespaces: 50, AppsPerNamespace: 10}
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
	if err := (kubetest.Scale{Nodes: scale.Nodes}).Fill(f, nil); err != nil {
		t.Fatal(err)
	}
	before := heap()
	if err := scale.Fill(f, nil); err != nil { // nodes again (replaced), PDBs, pods
		t.Fatal(err)
	}
	pods := scale.Nodes * scale.PodsPerNode
	perPod := float64(int64(heap())-int64(before)) / float64(pods)
	t.Logf("%d pods: %.0f bytes of heap each", pods, perPod)
	if perPod > bound {
		t.Errorf("the stores hold %.0f bytes per pod, want at most %d", perPod, bound)
	}
	runtime.KeepAlive(f)
}
