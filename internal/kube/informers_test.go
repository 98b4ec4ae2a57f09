package kube

import (
	"context"
	"log/slog"
	"maps"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// TestSyncedWaitsForHandlers: the informers are not synced, nor an informer
// healthy, until every handler registered on them has been delivered the
// initial list - a collector rendering in its handlers would otherwise serve
// a half scrape while the exporter says it is ready.
func TestSyncedWaitsForHandlers(t *testing.T) {
	release := make(chan struct{})
	ctx, f, nodes, _ := startBlocked(t, release, "a", "b")
	time.Sleep(50 * time.Millisecond)
	if f.Synced() || nodes.HasSynced() || nodes.Healthy() == nil {
		t.Fatal("synced while the handler has not been delivered the initial list")
	}
	close(release)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := f.WaitForSync(wctx); err != nil {
		t.Fatal(err)
	}
	if err := nodes.Healthy(); err != nil {
		t.Fatal(err)
	}
}

// TestRemovedHandlerNotWaitedFor: a handler removed before it synced no
// longer holds the informer unsynced.
func TestRemovedHandlerNotWaitedFor(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	_, _, nodes, reg := startBlocked(t, block, "a")
	if nodes.HasSynced() {
		t.Fatal("synced with a blocked handler")
	}
	if err := nodes.RemoveEventHandler(reg); err != nil {
		t.Fatal(err)
	}
	if !nodes.HasSynced() {
		t.Error("still waiting for a removed handler")
	}
}

// startBlocked starts the node informer over a fake clientset holding the
// named nodes, with a handler whose deliveries wait for block to close, and
// returns once the store has synced (the handler has not). The informers
// stop at the end of the test.
func startBlocked(t *testing.T, block <-chan struct{}, names ...string) (context.Context, *Informers, *Informer, cache.ResourceEventHandlerRegistration) {
	t.Helper()
	var objs []runtime.Object
	for _, n := range names {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	f := NewInformers(fake.NewClientset(objs...), Options{}, slog.New(slog.DiscardHandler))
	nodes := f.Nodes()
	reg, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { <-block }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), nodes.SharedIndexInformer.HasSynced) {
		t.Fatal("node store did not sync")
	}
	return ctx, f, nodes, reg
}

// TestNodeInformerKeepsWellKnownLabels: informers built without naming any
// node label still keep the instance type and zone, which collectors/cni and
// the nodes collector read. preflight's capacity check built its informers
// so, and every node's IP capacity went unknown.
func TestNodeInformerKeepsWellKnownLabels(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{
		corev1.LabelInstanceTypeStable: "m5.large", corev1.LabelTopologyZone: "eu-west-1a", "team": "x", "custom/group": "g1"}}}
	for _, tc := range []struct {
		opts Options
		want map[string]string
	}{
		{Options{}, map[string]string{corev1.LabelInstanceTypeStable: "m5.large", corev1.LabelTopologyZone: "eu-west-1a"}},
		{Options{NodeLabels: []string{"custom/group", corev1.LabelTopologyZone}},
			map[string]string{corev1.LabelInstanceTypeStable: "m5.large", corev1.LabelTopologyZone: "eu-west-1a", "custom/group": "g1"}},
	} {
		f := NewInformers(fake.NewClientset(node), tc.opts, slog.New(slog.DiscardHandler))
		nodes := f.Nodes()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		f.Start(ctx)
		if err := f.WaitForSync(ctx); err != nil {
			cancel()
			t.Fatal(err)
		}
		obj, ok, _ := nodes.GetStore().GetByKey("a")
		cancel()
		if !ok {
			t.Fatalf("%+v: node a not stored", tc.opts)
		}
		if got := obj.(*Node).Labels; !maps.Equal(got, tc.want) {
			t.Errorf("%+v: kept labels %v, want %v", tc.opts, got, tc.want)
		}
	}
}
