package workloads

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

// eventuallyCompare waits until the collector's series of the named
// families are want (exposition text, headers included).
func eventuallyCompare(t *testing.T, c *Collector, what, want string, names ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := testutil.CollectAndCompare(collectors.AsPrometheus(c, nil), strings.NewReader(want), names...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func scrape(t *testing.T, c *Collector) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func serviceSeries(ns, name string, ready, notReady, servingTerminating int) (endpoints, terminating string) {
	return fmt.Sprintf("upgradeguard_service_endpoints{namespace=%q,ready=\"false\",service=%q} %d\n", ns, name, notReady) +
			fmt.Sprintf("upgradeguard_service_endpoints{namespace=%q,ready=\"true\",service=%q} %d\n", ns, name, ready),
		fmt.Sprintf("upgradeguard_service_serving_terminating_endpoints{namespace=%q,service=%q} %d\n", ns, name, servingTerminating)
}

// services is the expected text of the Service families for the given
// (namespace, name, ready, notReady, servingTerminating) rows, sorted.
func services(rows ...string) string {
	var endpoints, terminating []string
	for _, r := range rows {
		var ns, name string
		var ready, notReady, st int
		if _, err := fmt.Sscanf(r, "%s %s %d %d %d", &ns, &name, &ready, &notReady, &st); err != nil {
			panic(err)
		}
		e, s := serviceSeries(ns, name, ready, notReady, st)
		endpoints, terminating = append(endpoints, e), append(terminating, s)
	}
	slices.Sort(endpoints)
	slices.Sort(terminating)
	if len(rows) == 0 {
		return ""
	}
	return servicesHeader + strings.Join(endpoints, "") + servingTerminatingHeader + strings.Join(terminating, "")
}

var serviceNames = []string{"upgradeguard_service_endpoints", "upgradeguard_service_serving_terminating_endpoints"}

// TestServiceRenderedFromAllItsSlices changes one slice of a Service over
// two slices at a time: each event re-renders the Service from both.
func TestServiceRenderedFromAllItsSlices(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(slice("shop", "web-a", "web", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}, ep{addr: "10.0.0.2"}))
	c := start(t, client)
	eventuallyCompare(t, c, "one slice", services("shop web 2 0 0"), serviceNames...)

	slices := client.DiscoveryV1().EndpointSlices("shop")
	if _, err := slices.Create(ctx, slice("shop", "web-b", "web", discoveryv1.AddressTypeIPv4,
		ep{addr: "10.0.0.3"}, ep{addr: "10.0.0.4", ready: no, serving: yes, terminating: yes}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "a second slice", services("shop web 3 1 1"), serviceNames...)

	if _, err := slices.Update(ctx, slice("shop", "web-a", "web", discoveryv1.AddressTypeIPv4,
		ep{addr: "10.0.0.1", ready: no, serving: no}, ep{addr: "10.0.0.2"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "the first slice updated", services("shop web 2 2 1"), serviceNames...)
}

// TestSliceMovesBetweenServices relabels a slice from one Service to
// another: both are re-rendered; a Service left without slices is dropped.
func TestSliceMovesBetweenServices(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(
		slice("shop", "x", "old", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}, ep{addr: "10.0.0.2"}),
		slice("shop", "y", "old", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.3", ready: no, serving: no}),
		slice("shop", "z", "other", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.1.1"}),
	)
	c := start(t, client)
	eventuallyCompare(t, c, "at start", services("shop old 2 1 0", "shop other 1 0 0"), serviceNames...)

	slices := client.DiscoveryV1().EndpointSlices("shop")
	if _, err := slices.Update(ctx, slice("shop", "x", "new", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}, ep{addr: "10.0.0.2"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "x moved to new", services("shop new 2 0 0", "shop old 0 1 0", "shop other 1 0 0"), serviceNames...)

	if _, err := slices.Update(ctx, slice("shop", "y", "new", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.3", ready: no, serving: no}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "y moved to new", services("shop new 2 1 0", "shop other 1 0 0"), serviceNames...)

	// A slice losing its label belongs to no Service.
	if _, err := slices.Update(ctx, slice("shop", "z", "", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.1.1"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "z without a Service", services("shop new 2 1 0"), serviceNames...)
}

// TestLastSliceDeleted deletes a Service's slices one by one: its series
// stay while one is left and go with the last; other Services are untouched.
func TestLastSliceDeleted(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(
		slice("shop", "api-a", "api", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}),
		slice("shop", "api-b", "api", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.2"}),
		slice("blog", "api-a", "api", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.1.1"}),
	)
	c := start(t, client)
	eventuallyCompare(t, c, "at start", services("blog api 1 0 0", "shop api 2 0 0"), serviceNames...)
	if err := client.DiscoveryV1().EndpointSlices("shop").Delete(ctx, "api-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "one slice left", services("blog api 1 0 0", "shop api 1 0 0"), serviceNames...)
	if err := client.DiscoveryV1().EndpointSlices("shop").Delete(ctx, "api-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "no slice left", services("blog api 1 0 0"), serviceNames...)
}

func deployment(name string, replicas, available int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}},
		Status:     appsv1.DeploymentStatus{Replicas: available, AvailableReplicas: available, ReadyReplicas: available, UpdatedReplicas: available},
	}
}

const availableHeader = `
# HELP upgradeguard_deployment_status_replicas_available Replicas of the Deployment available (ready for at least minReadySeconds), from its status.
# TYPE upgradeguard_deployment_status_replicas_available gauge
`

// TestDeploymentScaledThenDeleted scales a Deployment, then deletes it as
// an informer reports a deletion it missed (cache.DeletedFinalStateUnknown).
func TestDeploymentScaledThenDeleted(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(deployment("web", 3, 3), deployment("api", 2, 2))
	c := start(t, client)
	if _, err := client.AppsV1().Deployments("shop").Update(ctx, deployment("web", 5, 4), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventuallyCompare(t, c, "web scaled", `
# HELP upgradeguard_deployment_spec_replicas Replicas the Deployment wants (spec.replicas).
# TYPE upgradeguard_deployment_spec_replicas gauge
upgradeguard_deployment_spec_replicas{deployment="api",namespace="shop"} 2
upgradeguard_deployment_spec_replicas{deployment="web",namespace="shop"} 5
`+availableHeader+`
upgradeguard_deployment_status_replicas_available{deployment="api",namespace="shop"} 2
upgradeguard_deployment_status_replicas_available{deployment="web",namespace="shop"} 4
`, "upgradeguard_deployment_spec_replicas", "upgradeguard_deployment_status_replicas_available")

	// The handler as the informer calls it after a relist without web.
	last, _, _ := c.watched[1].informer.GetStore().GetByKey("shop/web")
	c.watched[1].handler.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/web", Obj: last})
	compare(t, c, availableHeader+`
upgradeguard_deployment_status_replicas_available{deployment="api",namespace="shop"} 2
`, "upgradeguard_deployment_status_replicas_available")
	if strings.Contains(scrape(t, c), `deployment="web"`) {
		t.Errorf("web's series left after its deletion:\n%s", scrape(t, c))
	}
}

// TestSliceTombstoneWithoutObject: a missed deletion of a slice the
// informer no longer has (a tombstone without object) drops every Service
// left without a slice.
func TestSliceTombstoneWithoutObject(t *testing.T) {
	inf := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
	c := New(inf.EndpointSlices(), inf.Deployments(), inf.StatefulSets(), inf.DaemonSets(), Options{})
	idx, h := c.endpointSlices.GetIndexer(), c.watched[0].handler
	for _, s := range []*discoveryv1.EndpointSlice{
		slice("shop", "a", "a", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}),
		slice("shop", "b", "b", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.2"}),
	} {
		obj, _ := kube.StripEndpointSlice(s)
		if err := idx.Add(obj); err != nil {
			t.Fatal(err)
		}
		h.OnAdd(obj, true)
	}
	gone, _, _ := idx.GetByKey("shop/b")
	if err := idx.Delete(gone); err != nil {
		t.Fatal(err)
	}
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/b"})
	// The informers never ran: their health is not the point here.
	if err := testutil.GatherAndCompare(metricstore.Gatherer(c), strings.NewReader(services("shop a 1 0 0")), serviceNames...); err != nil {
		t.Error(err)
	}
}

// TestUpdateSendsNothing: a scrape computes nothing; Update only reports
// the informers' health, the series come from WriteMetrics.
func TestUpdateSendsNothing(t *testing.T) {
	c := start(t, fake.NewClientset(deployment("web", 3, 3), slice("shop", "web-a", "web", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"})))
	ch := make(chan prometheus.Metric, 100)
	if err := c.Update(ch); err != nil {
		t.Errorf("Update: %v", err)
	}
	if len(ch) != 0 {
		t.Errorf("Update sent %d metrics, want none", len(ch))
	}
	if s := scrape(t, c); !strings.Contains(s, `upgradeguard_deployment_spec_replicas{namespace="shop",deployment="web"} 3`) {
		t.Errorf("WriteMetrics lacks web's replicas:\n%s", s)
	}
}

// TestConstLabels: with Options.ConstLabels (the exporter's --cluster),
// every series ends with them.
func TestConstLabels(t *testing.T) {
	c := startWith(t, fake.NewClientset(
		deployment("web", 3, 3),
		slice("shop", "web-a", "web", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}),
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: "db"}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "aws-node"}},
	), Options{ConstLabels: metricstore.ConstLabels(map[string]string{"cluster": "prod"})})
	out := scrape(t, c)
	series := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		series++
		if !strings.Contains(l, `,cluster="prod"} `) {
			t.Errorf("series without the cluster label: %s", l)
		}
	}
	if series != 3+5+5+5 {
		t.Errorf("%d series, want 18:\n%s", series, out)
	}
	compare(t, c, `
# HELP upgradeguard_deployment_spec_replicas Replicas the Deployment wants (spec.replicas).
# TYPE upgradeguard_deployment_spec_replicas gauge
upgradeguard_deployment_spec_replicas{cluster="prod",deployment="web",namespace="shop"} 3
`, "upgradeguard_deployment_spec_replicas")
}

// relistCase is a relist's before and after: Deployment a unchanged, b
// scaled, c gone, d new; Service web's slice re-cut (web-1 replaced by
// web-2 listing the same endpoints, as the EndpointSlice controller may),
// keep's unchanged, api's gone, new's new.
func relistCase() (before, after []runtime.Object) {
	web := []ep{{addr: "10.0.0.1"}, {addr: "10.0.0.2"}}
	before = []runtime.Object{
		deployment("a", 3, 3), deployment("b", 3, 3), deployment("c", 1, 1),
		slice("shop", "web-1", "web", discoveryv1.AddressTypeIPv4, web...),
		slice("shop", "keep-1", "keep", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.1.1"}),
		slice("shop", "api-1", "api", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.2.1"}),
	}
	after = []runtime.Object{
		deployment("a", 3, 3), deployment("b", 5, 5), deployment("d", 2, 2),
		slice("shop", "web-2", "web", discoveryv1.AddressTypeIPv4, web...),
		slice("shop", "keep-1", "keep", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.1.1"}),
		slice("shop", "new-1", "new", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.3.1"}),
	}
	return before, after
}

// relistHalf returns what is wrong with a scrape taken during relistCase's
// relist: an object there before and after must be there throughout, with
// its old or its new series - never missing, never counted from part of
// its slices.
func relistHalf(scrape string) []string {
	var wrong []string
	has := func(lines ...string) bool {
		for _, l := range lines {
			if strings.Contains(scrape, l+"\n") {
				return true
			}
		}
		return false
	}
	for _, want := range [][]string{
		{`upgradeguard_deployment_spec_replicas{namespace="shop",deployment="a"} 3`},
		{`upgradeguard_deployment_spec_replicas{namespace="shop",deployment="b"} 3`, `upgradeguard_deployment_spec_replicas{namespace="shop",deployment="b"} 5`},
		{`upgradeguard_service_endpoints{namespace="shop",service="web",ready="true"} 2`},
		{`upgradeguard_service_endpoints{namespace="shop",service="keep",ready="true"} 1`},
	} {
		if !has(want...) {
			wrong = append(wrong, "lacks "+want[0])
		}
	}
	return wrong
}

// relistDone tells whether a scrape shows relistCase's after state.
func relistDone(scrape string) bool {
	for _, gone := range []string{`deployment="c"`, `service="api"`} {
		if strings.Contains(scrape, gone) {
			return false
		}
	}
	for _, l := range []string{
		`upgradeguard_deployment_spec_replicas{namespace="shop",deployment="b"} 5`,
		`upgradeguard_deployment_spec_replicas{namespace="shop",deployment="d"} 2`,
		`upgradeguard_service_endpoints{namespace="shop",service="new",ready="true"} 1`,
	} {
		if !strings.Contains(scrape, l+"\n") {
			return false
		}
	}
	return true
}

// TestRelistNeverHalf delivers relistCase's relist to the handlers in the
// two orders client-go's informers use, and scrapes after every event: no
// scrape may lack an object that is there before and after, or show a
// Service counted from part of its slices.
//   - client-go 0.37's default (InOrderInformers with AtomicFIFO,
//     processReplacedAllInfo in tools/cache/controller.go): the store
//     replaced at once, then a DeletedFinalStateUnknown per object gone,
//     then an update or add per object listed;
//   - the DeltaFIFO (InOrderInformers off; kube-state-metrics' metrics_store
//     relies on it): per object listed, the store updated then the
//     handler told; then per object gone, the same with a tombstone.
func TestRelistNeverHalf(t *testing.T) {
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) {
			inf := kube.NewInformers(fake.NewClientset(), kube.Options{}, slog.New(slog.DiscardHandler))
			c := New(inf.EndpointSlices(), inf.Deployments(), inf.StatefulSets(), inf.DaemonSets(), Options{})
			before, after := relistCase()
			for _, w := range c.watched[:2] {
				for _, obj := range strip(t, before, w.informer) {
					if err := w.informer.GetIndexer().Add(obj); err != nil {
						t.Fatal(err)
					}
					w.handler.OnAdd(obj, true)
				}
			}
			step := 0
			check := func() {
				t.Helper()
				step++
				if wrong := relistHalf(scrape(t, c)); len(wrong) > 0 {
					t.Fatalf("after event %d of the relist: %s:\n%s", step, strings.Join(wrong, "; "), scrape(t, c))
				}
			}
			check()
			for _, w := range c.watched[:2] {
				relist(t, w, strip(t, after, w.informer), atomic, check)
			}
			if s := scrape(t, c); !relistDone(s) {
				t.Errorf("after the relist:\n%s", s)
			}
		})
	}
}

// strip returns the objects of objs the informer holds, as its transform
// stores them.
func strip(t *testing.T, objs []runtime.Object, informer *kube.Informer) []any {
	t.Helper()
	var out []any
	for _, o := range objs {
		var obj any
		var err error
		switch o := o.(type) {
		case *discoveryv1.EndpointSlice:
			if informer.Name() != "endpointslices" {
				continue
			}
			obj, err = kube.StripEndpointSlice(o)
		case *appsv1.Deployment:
			if informer.Name() != "deployments" {
				continue
			}
			obj, err = kube.StripDeployment(o)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, obj)
	}
	return out
}

// relist delivers objs to w's handler as a relist, in client-go's atomic or
// DeltaFIFO order (see TestRelistNeverHalf), calling check after each event.
func relist(t *testing.T, w watched, objs []any, atomic bool, check func()) {
	t.Helper()
	store := w.informer.GetIndexer()
	listed := map[string]bool{}
	for _, obj := range objs {
		key, _ := cache.MetaNamespaceKeyFunc(obj)
		listed[key] = true
	}
	var gone []cache.DeletedFinalStateUnknown
	for _, key := range store.ListKeys() {
		if !listed[key] {
			old, _, _ := store.GetByKey(key)
			gone = append(gone, cache.DeletedFinalStateUnknown{Key: key, Obj: old})
		}
	}
	olds := map[string]any{}
	for key := range listed {
		if old, ok, _ := store.GetByKey(key); ok {
			olds[key] = old
		}
	}
	update := func(obj any) {
		key, _ := cache.MetaNamespaceKeyFunc(obj)
		if old, ok := olds[key]; ok {
			w.handler.OnUpdate(old, obj)
		} else {
			w.handler.OnAdd(obj, false)
		}
		check()
	}
	if atomic {
		if err := store.Replace(objs, ""); err != nil {
			t.Fatal(err)
		}
		for _, tomb := range gone {
			w.handler.OnDelete(tomb)
			check()
		}
		for _, obj := range objs {
			update(obj)
		}
		return
	}
	for _, obj := range objs {
		if err := store.Update(obj); err != nil {
			t.Fatal(err)
		}
		update(obj)
	}
	for _, tomb := range gone {
		if err := store.Delete(tomb.Obj); err != nil {
			t.Fatal(err)
		}
		w.handler.OnDelete(tomb)
		check()
	}
}

// TestRelistThroughInformer makes the informers relist for real (their
// watches end with 410 Expired, as when the API server's watch cache no longer
// has their resource version) while the cluster changed as relistCase
// says, scraping all along: the missed deletions arrive as tombstones and
// are dropped, and no scrape is half.
func TestRelistThroughInformer(t *testing.T) {
	before, after := relistCase()
	client := fake.NewClientset(before...)
	var mu sync.Mutex
	watchers := map[string][]*watch.FakeWatcher{}
	for _, res := range []string{"deployments", "endpointslices"} {
		client.PrependWatchReactor(res, func(k8stesting.Action) (bool, watch.Interface, error) {
			w := watch.NewFakeWithChanSize(1, false)
			mu.Lock()
			defer mu.Unlock()
			watchers[res] = append(watchers[res], w)
			return true, w, nil
		})
	}
	c := start(t, client)
	if wrong := relistHalf(scrape(t, c)); len(wrong) > 0 {
		t.Fatalf("at start: %v", wrong)
	}

	// The cluster changes unseen: the watches are the test's, silent.
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	endpointSlices := schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	tracker := client.Tracker()
	for _, o := range before {
		gvr := deployments
		if _, ok := o.(*discoveryv1.EndpointSlice); ok {
			gvr = endpointSlices
		}
		m := o.(metav1.Object)
		if err := tracker.Delete(gvr, m.GetNamespace(), m.GetName()); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range after {
		gvr := deployments
		if _, ok := o.(*discoveryv1.EndpointSlice); ok {
			gvr = endpointSlices
		}
		if err := tracker.Create(gvr, o, o.(metav1.Object).GetNamespace()); err != nil {
			t.Fatal(err)
		}
	}

	var scrapes atomic.Int64
	var half atomic.Value
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			var b bytes.Buffer
			_ = c.WriteMetrics(&b)
			scrapes.Add(1)
			if wrong := relistHalf(b.String()); len(wrong) > 0 {
				half.CompareAndSwap(nil, strings.Join(wrong, "; ")+":\n"+b.String())
			}
		}
	})
	mu.Lock()
	for _, ws := range watchers {
		ws[len(ws)-1].Error(&apierrors.NewResourceExpired("too old resource version").ErrStatus)
	}
	mu.Unlock()
	eventually(t, "the relist", func() bool { return relistDone(scrape(t, c)) })
	close(done)
	wg.Wait()
	if h := half.Load(); h != nil {
		t.Errorf("a scrape during the relist %s", h)
	}
	mu.Lock()
	defer mu.Unlock()
	for res, ws := range watchers {
		if len(ws) < 2 {
			t.Errorf("%s: %d watches, want a second one after the relist", res, len(ws))
		}
	}
	t.Logf("%d scrapes during the relist", scrapes.Load())
}
