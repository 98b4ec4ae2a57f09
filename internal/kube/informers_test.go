package kube

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// TestSyncedWaitsForHandlers: the informers are not synced, nor an informer
// healthy, until every handler registered on them has been delivered the
// initial list - a collector rendering in its handlers would otherwise serve
// a half scrape while the exporter says it is ready.
func TestSyncedWaitsForHandlers(t *testing.T) {
	client := fake.NewClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}})
	f := NewInformers(client, Options{}, slog.New(slog.DiscardHandler))
	nodes := f.Nodes()
	release := make(chan struct{})
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { <-release },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), nodes.SharedIndexInformer.HasSynced) {
		t.Fatal("node store did not sync")
	}
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
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}})
	f := NewInformers(client, Options{}, slog.New(slog.DiscardHandler))
	nodes := f.Nodes()
	block := make(chan struct{})
	defer close(block)
	reg, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(any) { <-block }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), nodes.SharedIndexInformer.HasSynced) {
		t.Fatal("node store did not sync")
	}
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
