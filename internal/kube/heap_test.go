package kube_test

import (
	"log/slog"
	"runtime"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
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
	scale := kubetest.Scale{Nodes: 500, PodsPerNode: 20, Namespaces: 50, AppsPerNamespace: 10}
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
	if err := (kubetest.Scale{Nodes: scale.Nodes}).Fill(f, nil); err != nil {
		t.Fatal(err)
	}
	before := heapAlloc()
	if err := scale.Fill(f, nil); err != nil { // nodes again (replaced), PDBs, pods
		t.Fatal(err)
	}
	pods := scale.Nodes * scale.PodsPerNode
	perPod := float64(int64(heapAlloc())-int64(before)) / float64(pods)
	t.Logf("%d pods: %.0f bytes of heap each", pods, perPod)
	if perPod > bound {
		t.Errorf("the stores hold %.0f bytes per pod, want at most %d", perPod, bound)
	}
	runtime.KeepAlive(f)
}

// nodeLabels are the labels the exporter keeps by default (the nodes
// collector's NodeLabels): zone, instance type, node group.
var nodeLabels = []string{corev1.LabelTopologyZone, corev1.LabelFailureDomainBetaZone, corev1.LabelInstanceTypeStable,
	corev1.LabelInstanceType, "kops.k8s.io/instancegroup", "eks.amazonaws.com/nodegroup"}

// TestNodeStoreHeap bounds the heap the node and Lease stores hold per node
// at 2,000 nodes (kubetest's four node labels, three of them kept): 2,037
// bytes with a labels map per node, 1,693 sharing the maps of the nodes with
// the same kept labels.
func TestNodeStoreHeap(t *testing.T) {
	const bound = 1850 // bytes per node
	f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
	f.Nodes()
	f.NodeLeases()
	before := heapAlloc()
	scale := kubetest.Scale{Nodes: 2000}
	if err := scale.Fill(f, nodeLabels); err != nil {
		t.Fatal(err)
	}
	perNode := float64(int64(heapAlloc())-int64(before)) / float64(scale.Nodes)
	t.Logf("%d nodes: %.0f bytes of heap each", scale.Nodes, perNode)
	if perNode > bound {
		t.Errorf("the stores hold %.0f bytes per node, want at most %d", perNode, bound)
	}
	runtime.KeepAlive(f)
}

// heapAlloc returns the bytes of live heap objects after two collections.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
