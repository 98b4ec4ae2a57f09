package nodes

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// TestRelistNeverEmpty makes the node informer relist, as it does when its
// watch expires (HTTP 410): while the watch was down one node was deleted
// and another tainted. Scrapes run all along; none may show fewer nodes than
// remain, as they would if a relist cleared the series and rendered them
// again. The informer delivers the relist as a deletion
// (cache.DeletedFinalStateUnknown) of the node gone and an update of each
// node still there.
func TestRelistNeverEmpty(t *testing.T) {
	const nodes = 500
	var objs []runtime.Object
	for i := range nodes {
		name := fmt.Sprintf("n-%03d", i)
		objs = append(objs, node(name, corev1.ConditionTrue), lease(name, time.Second, 40))
	}
	client := fake.NewClientset(objs...)
	var lists atomic.Int32
	client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	// The first watch is one the test controls; later ones are the fake's.
	first := watch.NewFake()
	var watches atomic.Int32
	client.PrependWatchReactor("nodes", func(k8stesting.Action) (bool, watch.Interface, error) {
		if watches.Add(1) == 1 {
			return true, first, nil
		}
		return false, nil, nil
	})
	inf := kube.NewInformers(client, kube.Options{NodeLabels: Options{}.NodeLabels()}, slog.New(slog.DiscardHandler))
	c, err := New(inf.Nodes(), inf.NodeLeases(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := inf.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	count := func(text, prefix string) int { return strings.Count(text, "\n"+prefix) }
	scrape := func() string {
		var buf bytes.Buffer
		buf.WriteByte('\n')
		if err := c.WriteMetrics(&buf); err != nil {
			t.Error(err)
		}
		return buf.String()
	}
	eventually(t, "every node rendered", func() bool {
		s := scrape()
		return count(s, "upgradeguard_node_ready{") == nodes && count(s, "upgradeguard_node_heartbeat_age_seconds{") == nodes
	})

	// Unseen by the informer, whose watch is the test's.
	api := client.CoreV1().Nodes()
	if err := api.Delete(ctx, "n-250", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tainted, err := api.Get(ctx, "n-100", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tainted.Spec.Taints = []corev1.Taint{{Key: "relisted", Effect: corev1.TaintEffectNoSchedule}}
	if _, err := api.Update(ctx, tainted, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	var (
		stop                 atomic.Bool
		wg                   sync.WaitGroup
		scrapes, minReady    = 0, nodes
		minAge, duringRelist = nodes, 0
	)
	wg.Go(func() {
		for !stop.Load() {
			s := scrape()
			scrapes++
			minReady = min(minReady, count(s, "upgradeguard_node_ready{"))
			minAge = min(minAge, count(s, "upgradeguard_node_heartbeat_age_seconds{"))
			if lists.Load() > 1 && strings.Contains(s, `node="n-250"`) {
				duringRelist++
			}
		}
	})
	first.Error(&metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"})
	eventually(t, "the relist", func() bool {
		s := scrape()
		return lists.Load() > 1 && !strings.Contains(s, `node="n-250"`) && strings.Contains(s, `key="relisted"`)
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("%d scrapes, %d of them after the relist began and before its deletion", scrapes, duringRelist)
	if minReady < nodes-1 || minAge < nodes-1 {
		t.Errorf("a scrape showed %d nodes' Ready and %d heartbeat ages, want at least %d", minReady, minAge, nodes-1)
	}
	if s := scrape(); count(s, "upgradeguard_node_ready{") != nodes-1 || count(s, "upgradeguard_node_heartbeat_age_seconds{") != nodes-1 {
		t.Errorf("after the relist: %d nodes' Ready and %d heartbeat ages, want %d", count(s, "upgradeguard_node_ready{"), count(s, "upgradeguard_node_heartbeat_age_seconds{"), nodes-1)
	}
}
