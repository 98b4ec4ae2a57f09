package kube_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"testing"
	"unsafe"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

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
// 10,000 pods (the smaller scale scenario): the pod, its key and index
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

// TestNodeSize: a stored Node fits the 176-byte size class and a Lease the
// 80-byte one. A stripped corev1.Node was 784 bytes (896 allocated) and a
// coordinationv1.Lease 320.
func TestNodeSize(t *testing.T) {
	if size := unsafe.Sizeof(kube.Node{}); size > 176 {
		t.Errorf("kube.Node is %d bytes, want at most 176", size)
	}
	if size := unsafe.Sizeof(kube.Lease{}); size > 80 {
		t.Errorf("kube.Lease is %d bytes, want at most 80", size)
	}
}

// nodeLabels are the labels the exporter keeps by default (the nodes
// collector's NodeLabels): zone, instance type, node group.
var nodeLabels = []string{corev1.LabelTopologyZone, corev1.LabelFailureDomainBetaZone, corev1.LabelInstanceTypeStable,
	corev1.LabelInstanceType, "kops.k8s.io/instancegroup", "eks.amazonaws.com/nodegroup"}

// TestNodeStoreHeap bounds the heap the node and Lease stores hold per node
// at 2,000 nodes (kubetest's four node labels, three of them kept): 2,037
// bytes with a labels map per node, 1,693 sharing the maps of the nodes with
// the same kept labels, 581 storing Node and Lease instead of stripped
// corev1.Node and coordinationv1.Lease.
func TestNodeStoreHeap(t *testing.T) {
	const bound = 650 // bytes per node
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

// TestWorkloadSize: the compact workload types fit the 96-byte size class,
// the Deployment with its gate hold mark the 112-byte one. Stripped appsv1
// objects were 1,208 to 1,312 bytes (a Deployment 1,232, 1,280 allocated),
// most of them the zero pod template.
func TestWorkloadSize(t *testing.T) {
	for _, c := range []struct {
		typ  any
		most uintptr
	}{{kube.Deployment{}, 104}, {kube.StatefulSet{}, 96}, {kube.DaemonSet{}, 96}} {
		if size := reflect.TypeOf(c.typ).Size(); size > c.most {
			t.Errorf("%T is %d bytes, want at most %d", c.typ, size, c.most)
		}
	}
}

// TestWorkloadStoreHeap bounds the heap the workload stores hold per object,
// 2,000 of each kind in 100 namespaces: the stored object, what it keeps of
// the decoded one (strings, the strategy's values) and its store key.
// Objects are decoded from JSON, as the informers receive them, so that each
// has its own strings. Stripped appsv1 objects took 1,430 bytes a
// Deployment, 1,558 a StatefulSet and 1,492 a DaemonSet; the compact types
// 228, 228 and 276 (the DaemonSets keep a maxUnavailable of 10%).
func TestWorkloadStoreHeap(t *testing.T) {
	const n, bound = 2000, 300 // objects, bytes per object
	for _, c := range []struct {
		kind     string
		informer func(*kube.Informers) *kube.Informer
		strip    cache.TransformFunc
		object   func(namespace, name string) (any, any) // the object, and a new one to decode it into
	}{
		{"Deployment", (*kube.Informers).Deployments, kube.StripDeployment, func(ns, name string) (any, any) {
			return kubetest.Deployment(ns, name, 3), &appsv1.Deployment{}
		}},
		{"StatefulSet", (*kube.Informers).StatefulSets, kube.StripStatefulSet, func(ns, name string) (any, any) {
			return kubetest.StatefulSet(ns, name), &appsv1.StatefulSet{}
		}},
		{"DaemonSet", (*kube.Informers).DaemonSets, kube.StripDaemonSet, func(ns, name string) (any, any) {
			return kubetest.DaemonSet(ns, name, 500), &appsv1.DaemonSet{}
		}},
	} {
		t.Run(c.kind, func(t *testing.T) {
			f := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
			inf := c.informer(f)
			decode := func(i int) any {
				obj, decoded := c.object(fmt.Sprintf("team-%03d", i%100), fmt.Sprintf("app-%d", i))
				b, err := json.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(b, decoded); err != nil {
					t.Fatal(err)
				}
				return decoded
			}
			decode(-1) // encoding/json's caches of the type, outside the measure
			before := heapAlloc()
			for i := range n {
				stripped, err := c.strip(decode(i))
				if err != nil {
					t.Fatal(err)
				}
				if err := inf.GetIndexer().Add(stripped); err != nil {
					t.Fatal(err)
				}
			}
			per := float64(int64(heapAlloc())-int64(before)) / n
			t.Logf("%d %ss: %.0f bytes of heap each", n, c.kind, per)
			if per > bound {
				t.Errorf("the store holds %.0f bytes per %s, want at most %d", per, c.kind, bound)
			}
			runtime.KeepAlive(f)
		})
	}
}

// heapAlloc returns the bytes of live heap objects after two collections.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
