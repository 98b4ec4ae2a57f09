package kube

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
	"weak"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// fullPod returns a pod with much of what the API server sends, most of it
// of no use to the exporter.
func fullPod(ns, name, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, UID: "0d6c3d0e-9a4e-4f6b-8a3e-1c2b3d4e5f60",
			GenerateName: "web-7d9f8c6b5-", ResourceVersion: "4711", Generation: 3,
			CreationTimestamp: metav1.NewTime(time.Unix(1700000000, 0)),
			Labels:            labels,
			Annotations:       map[string]string{"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"},
			OwnerReferences: []metav1.OwnerReference{
				{APIVersion: "v1", Kind: "ConfigMap", Name: "not-the-controller", UID: "cm"},
				{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8c6b5", UID: "rs", Controller: ptr.To(true)},
			},
			Finalizers:    []string{"example.com/finalizer"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update"}},
		},
		Spec: corev1.PodSpec{
			NodeName: node,
			Volumes: []corev1.Volume{
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			Containers: []corev1.Container{{Name: "web", Image: "pause:3.10"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, Reason: "r", Message: "m"},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse}, // only the first counts, as in IsPodReady
			},
			PodIP:             "10.0.0.1",
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true}},
		},
	}
}

func strip(t *testing.T, obj any) *Pod {
	t.Helper()
	out, err := StripPod(obj)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := out.(*Pod)
	if !ok {
		t.Fatalf("StripPod returned %T, want *kube.Pod", out)
	}
	return p
}

// mapID identifies a map's storage, to tell whether two maps are one.
func mapID(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }

// TestStripPodKeepsWhatThePDBCollectorReads checks field by field what the
// transform keeps: exactly what collectors/pdb reads, nothing else.
func TestStripPodKeepsWhatThePDBCollectorReads(t *testing.T) {
	deleted := metav1.NewTime(time.Unix(1700000100, 0))
	for _, tc := range []struct {
		name   string
		modify func(*corev1.Pod)
		want   Pod // Name, Namespace, ResourceVersion, Labels, node and group are checked apart
		node   string
	}{{
		name: "running ready ReplicaSet pod with an emptyDir",
		want: Pod{Phase: corev1.PodRunning, HasController: true, ControllerKind: "ReplicaSet", Ready: true, HasEmptyDir: true, HasPodIP: true},
		node: "node-1",
	}, {
		name: "mirror pod",
		modify: func(p *corev1.Pod) {
			p.Annotations[MirrorPodAnnotation] = "hash"
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: "n", Controller: ptr.To(true)}}
			p.Spec.Volumes = nil
		},
		want: Pod{Phase: corev1.PodRunning, HasController: true, ControllerKind: "Node", Ready: true, Mirror: true, HasPodIP: true},
		node: "node-1",
	}, {
		name: "unowned, not ready, terminating",
		modify: func(p *corev1.Pod) {
			p.OwnerReferences = p.OwnerReferences[:1] // not a controller
			p.Status.Conditions[1].Status = corev1.ConditionFalse
			p.DeletionTimestamp = &deleted
		},
		want: Pod{DeletionTimestamp: &deleted, Phase: corev1.PodRunning, HasEmptyDir: true, HasPodIP: true},
		node: "node-1",
	}, {
		name: "pending and unscheduled, no Ready condition",
		modify: func(p *corev1.Pod) {
			p.Spec.NodeName = ""
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = p.Status.Conditions[:1]
		},
		want: Pod{Phase: corev1.PodPending, HasController: true, ControllerKind: "ReplicaSet", HasEmptyDir: true, HasPodIP: true},
	}, {
		name: "DaemonSet pod that succeeded",
		modify: func(p *corev1.Pod) {
			p.OwnerReferences[1].Kind = "DaemonSet"
			p.Status.Phase = corev1.PodSucceeded
		},
		want: Pod{Phase: corev1.PodSucceeded, HasController: true, ControllerKind: "DaemonSet", Ready: true, HasEmptyDir: true, HasPodIP: true},
		node: "node-1",
	}, {
		name: "hostNetwork pod without an IP yet",
		modify: func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Status.PodIP, p.Status.PodIPs = "", nil
		},
		want: Pod{Phase: corev1.PodRunning, HasController: true, ControllerKind: "ReplicaSet", Ready: true, HasEmptyDir: true, HostNetwork: true},
		node: "node-1",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			in := fullPod("team-a", "web-7d9f8c6b5-x2x4z", "node-1", map[string]string{"app": "web", "pod-template-hash": "7d9f8c6b5"})
			if tc.modify != nil {
				tc.modify(in)
			}
			got := strip(t, in)

			if got.Name != in.Name || got.Namespace != in.Namespace || got.ResourceVersion != in.ResourceVersion {
				t.Errorf("name %s/%s resourceVersion %s, want %s/%s %s", got.Namespace, got.Name, got.ResourceVersion, in.Namespace, in.Name, in.ResourceVersion)
			}
			if want := map[string]string{"app": "web", "pod-template-hash": "7d9f8c6b5"}; !reflect.DeepEqual(got.Labels, want) {
				t.Errorf("Labels = %v, want %v", got.Labels, want)
			}
			if got.NodeName() != tc.node {
				t.Errorf("NodeName() = %q, want %q", got.NodeName(), tc.node)
			}
			// Every other field.
			got.Name, got.Namespace, got.ResourceVersion, got.Labels = "", "", "", nil
			got.node, got.group = tc.want.node, tc.want.group
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("stripped = %+v\nwant %+v", *got, tc.want)
			}
		})
	}

	// The transform must not keep the decoder's strings or maps alive
	// beyond what it keeps: the phase is the corev1 constant.
	in := fullPod("team-a", "p", "node-1", nil)
	in.Status.Phase = corev1.PodPhase(string([]byte("Running")))
	if got := strip(t, in); unsafe.StringData(string(got.Phase)) != unsafe.StringData(string(corev1.PodRunning)) {
		t.Error("the phase is the decoded string, not the corev1.PodRunning constant")
	}
}

func TestStripPodSharesLabelSets(t *testing.T) {
	labels := func(app string) map[string]string {
		// A new map each time, built in a different order, as decoding does.
		m := map[string]string{"pod-template-hash": "7d9f8c6b5"}
		m["app.kubernetes.io/name"] = app
		m["app.kubernetes.io/instance"] = app + "-prod"
		return m
	}
	podWith := func(ns, name, node string, l map[string]string) *Pod {
		return strip(t, fullPod(string([]byte(ns)), name, string([]byte(node)), l))
	}
	in := labels("web")
	a := podWith("team-a", "web-1", "node-1", in)
	b := podWith("team-a", "web-2", "node-2", labels("web"))
	c := podWith("team-a", "web-3", "node-1", labels("web"))
	if mapID(a.Labels) != mapID(b.Labels) || mapID(a.Labels) != mapID(c.Labels) {
		t.Error("pods with the same namespace, controller kind and labels have distinct label maps")
	}
	if mapID(a.Labels) == mapID(in) {
		t.Error("the shared label map is the first pod's own map, not a copy")
	}
	in["app.kubernetes.io/name"] = "mutated"
	if a.Labels["app.kubernetes.io/name"] != "web" {
		t.Error("changing a transformed pod's labels changed the shared map")
	}
	if unsafe.StringData(a.Namespace) != unsafe.StringData(b.Namespace) {
		t.Error("pods of one group do not share their namespace string")
	}
	if unsafe.StringData(a.NodeName()) != unsafe.StringData(c.NodeName()) {
		t.Error("pods of one node do not share their node name string")
	}

	for name, other := range map[string]*Pod{
		"other labels":    podWith("team-a", "api-1", "node-1", labels("api")),
		"one label less":  podWith("team-a", "web-4", "node-1", map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "web-prod"}),
		"other namespace": podWith("team-b", "web-1", "node-1", labels("web")),
		"other controller kind": strip(t, func() *corev1.Pod {
			p := fullPod("team-a", "web-5", "node-1", labels("web"))
			p.OwnerReferences[1].Kind = "StatefulSet"
			return p
		}()),
	} {
		if mapID(other.Labels) == mapID(a.Labels) {
			t.Errorf("%s: shares the label map of a different label set", name)
		}
		if other.group == a.group {
			t.Errorf("%s: same group", name)
		}
	}
	// Keys whose concatenations are equal must not collide.
	x := podWith("team-a", "x", "node-1", map[string]string{"ab": "c"})
	y := podWith("team-a", "y", "node-1", map[string]string{"a": "bc"})
	if mapID(x.Labels) == mapID(y.Labels) {
		t.Error(`{ab: c} and {a: bc} share a map`)
	}
	if z := podWith("team-a", "z", "node-1", nil); z.Labels != nil {
		t.Errorf("a pod without labels has labels %v", z.Labels)
	}
}

func TestStripPodPassesOtherObjectsThrough(t *testing.T) {
	p := strip(t, fullPod("team-a", "web-1", "node-1", nil))
	if again := strip(t, p); again != p {
		t.Error("StripPod of a stripped *Pod is not the same *Pod: not idempotent")
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "team-a/web-1", Obj: p}
	if out, _ := StripPod(tomb); out != tomb {
		t.Errorf("StripPod(tombstone) = %#v", out)
	}
}

func TestPodGroupsReleasedWithTheirPods(t *testing.T) {
	c := &groupCache{groups: map[string]weak.Pointer[podGroup]{}}
	kept := c.get("team-a", "ReplicaSet", map[string]string{"app": "kept"})
	for i := range 1000 {
		c.get("team-a", "ReplicaSet", map[string]string{"app": fmt.Sprint("gone-", i)})
	}
	// Garbage collections meanwhile may already have released some.
	deadline := time.Now().Add(10 * time.Second)
	for c.len() > 1 && time.Now().Before(deadline) {
		runtime.GC() // cleanups run on their own goroutine after a cycle
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.len(); n != 1 {
		t.Fatalf("cache holds %d groups once their pods are gone, want 1", n)
	}
	if again := c.get("team-a", "ReplicaSet", map[string]string{"app": "kept"}); again != kept {
		t.Error("a group still referenced was not returned from the cache")
	}
	runtime.KeepAlive(kept)
}

func TestStripPodConcurrent(t *testing.T) {
	const goroutines, perGoroutine, sets = 8, 200, 5
	out := make([][]*Pod, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				l := map[string]string{"app": fmt.Sprint("app-", i%sets), "tier": "web"}
				obj, err := StripPod(fullPod("team-c", fmt.Sprint("p-", g, "-", i), fmt.Sprint("node-", i%3), l))
				if err != nil {
					t.Error(err)
					return
				}
				out[g] = append(out[g], obj.(*Pod))
			}
		})
	}
	wg.Wait()
	first := map[string]uintptr{}
	for _, pods := range out {
		for _, p := range pods {
			id, ok := first[p.Labels["app"]]
			if !ok {
				first[p.Labels["app"]] = mapID(p.Labels)
			} else if id != mapID(p.Labels) {
				t.Fatalf("pods of %s have distinct label maps", p.Labels["app"])
			}
		}
	}
	if len(first) != sets {
		t.Errorf("%d label sets, want %d", len(first), sets)
	}
}

// watchListPods streams pods as the API server answers a watch-list request:
// ADDED events, then a bookmark marking the end of the initial events. It
// serves no plain list, so the reflector must take the watch-list path, where
// it transforms into a temporary store and then replaces the informer's
// store with those already transformed objects.
type watchListPods struct {
	listed  atomic.Int32
	pods    []*corev1.Pod
	watches chan *watch.RaceFreeFakeWatcher
}

func (lw *watchListPods) ListWithContext(context.Context, metav1.ListOptions) (k8sruntime.Object, error) {
	lw.listed.Add(1)
	return nil, fmt.Errorf("list called: the test wants the watch-list path")
}

func (lw *watchListPods) WatchWithContext(_ context.Context, o metav1.ListOptions) (watch.Interface, error) {
	w := watch.NewRaceFreeFake()
	if o.SendInitialEvents != nil && *o.SendInitialEvents {
		for _, p := range lw.pods {
			w.Add(p.DeepCopy())
		}
		w.Action(watch.Bookmark, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			ResourceVersion: "100", Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"},
		}})
	}
	lw.watches <- w
	return w, nil
}

// TestPodInformer runs a real SharedIndexInformer with the pod transform and
// index: its store, index and event handlers all see *Pod, through the
// watch-list path and the watch events after it.
func TestPodInformer(t *testing.T) {
	lw := &watchListPods{watches: make(chan *watch.RaceFreeFakeWatcher, 10)}
	lw.pods = []*corev1.Pod{
		fullPod("team-a", "web-1", "node-1", map[string]string{"app": "web"}),
		fullPod("team-a", "web-2", "node-1", map[string]string{"app": "web"}),
		fullPod("team-a", "web-3", "node-2", map[string]string{"app": "web"}),
	}
	inf := cache.NewSharedIndexInformerWithOptions(&cache.ListWatch{
		ListWithContextFunc: lw.ListWithContext, WatchFuncWithContext: lw.WatchWithContext,
	}, &corev1.Pod{}, cache.SharedIndexInformerOptions{
		Indexers: cache.Indexers{PodNodeIndex: podNodeIndex},
	})
	if err := inf.SetTransform(StripPod); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []string
	record := func(kind string, obj any) {
		mu.Lock()
		defer mu.Unlock()
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		p, ok := obj.(*Pod)
		if !ok {
			t.Errorf("%s handler got %T, want *kube.Pod", kind, obj)
			return
		}
		events = append(events, kind+" "+p.Name+" "+string(p.Phase))
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { record("add", obj) },
		UpdateFunc: func(_, obj any) { record("update", obj) },
		DeleteFunc: func(obj any) { record("delete", obj) },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go inf.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	w := <-lw.watches
	if n := lw.listed.Load(); n > 0 {
		t.Fatalf("the reflector listed %d times: not the watch-list path", n)
	}

	for _, obj := range inf.GetStore().List() {
		if _, ok := obj.(*Pod); !ok {
			t.Fatalf("store holds %T, want *kube.Pod", obj)
		}
	}
	onNode1, err := inf.GetIndexer().ByIndex(PodNodeIndex, "node-1")
	if err != nil || len(onNode1) != 2 {
		t.Fatalf("ByIndex(node-1) = %d pods, %v; want 2", len(onNode1), err)
	}
	obj, exists, err := inf.GetStore().GetByKey("team-a/web-3")
	if err != nil || !exists {
		t.Fatalf("GetByKey(team-a/web-3) = %v, %v", exists, err)
	}
	if m, err := meta.Accessor(obj); err != nil || m.GetName() != "web-3" || m.GetResourceVersion() != "4711" {
		t.Fatalf("meta.Accessor of a stored pod: %v, %v", m, err)
	}
	if p := obj.(*Pod); mapID(p.Labels) != mapID(onNode1[0].(*Pod).Labels) {
		t.Error("pods of the watch-list do not share their label map")
	}

	done := fullPod("team-a", "web-1", "node-1", map[string]string{"app": "web"})
	done.ResourceVersion, done.Status.Phase = "4712", corev1.PodSucceeded
	w.Modify(done)
	w.Delete(fullPod("team-a", "web-3", "node-2", map[string]string{"app": "web"}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, exists, _ := inf.GetStore().GetByKey("team-a/web-3")
		obj, _, _ := inf.GetStore().GetByKey("team-a/web-1")
		if !exists && obj.(*Pod).Phase == corev1.PodSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("watch events not applied to the store")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pods, _ := inf.GetIndexer().ByIndex(PodNodeIndex, "node-2"); len(pods) != 0 {
		t.Errorf("node-2 still indexes %d pods after its pod's deletion", len(pods))
	}
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n == 5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{
		"add web-1 Running": true, "add web-2 Running": true, "add web-3 Running": true,
		"update web-1 Succeeded": true, "delete web-3 Running": true,
	}
	if len(events) != len(want) {
		t.Fatalf("events %q, want %d", events, len(want))
	}
	for _, e := range events {
		if !want[e] {
			t.Errorf("unexpected event %q; all: %q", e, events)
		}
	}
}

// TestPodSize guards the size class a stored pod takes: 150,000 of them make
// every 32 bytes cost 4.6 MiB. See the comment on Pod before growing it.
func TestPodSize(t *testing.T) {
	if size := unsafe.Sizeof(Pod{}); size > 288 {
		t.Errorf("kube.Pod is %d bytes, more than its 288-byte size class", size)
	}
}
