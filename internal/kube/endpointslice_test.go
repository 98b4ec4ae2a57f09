package kube

import (
	"log/slog"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestEndpointSliceServiceIndex: the EndpointSlice informer finds a
// Service's slices by namespace/name, follows a slice relabelled to another
// Service, and leaves out slices of no Service.
func TestEndpointSliceServiceIndex(t *testing.T) {
	inf := NewInformers(fake.NewClientset(), Options{}, slog.New(slog.DiscardHandler)).EndpointSlices()
	store := inf.GetIndexer()
	add := func(ns, name, service string) {
		t.Helper()
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}}}
		if service != "" {
			s.Labels[discoveryv1.LabelServiceName] = service
		}
		obj, err := StripEndpointSlice(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Update(obj); err != nil {
			t.Fatal(err)
		}
	}
	slicesOf := func(key string) []string {
		t.Helper()
		objs, err := store.ByIndex(EndpointSliceServiceIndex, key)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range objs {
			names = append(names, o.(*EndpointSlice).Name)
		}
		slices.Sort(names)
		return names
	}
	add("shop", "web-a", "web")
	add("shop", "web-b", "web")
	add("blog", "web-a", "web")
	add("shop", "custom", "")
	for key, want := range map[string][]string{"shop/web": {"web-a", "web-b"}, "blog/web": {"web-a"}, "shop/": nil, "/": nil} {
		if got := slicesOf(key); !slices.Equal(got, want) {
			t.Errorf("slices of %q: %v, want %v", key, got, want)
		}
	}
	if keys := store.ListIndexFuncValues(EndpointSliceServiceIndex); len(keys) != 2 {
		t.Errorf("index keys %v, want shop/web and blog/web", keys)
	}
	add("shop", "web-b", "api")
	if got := slicesOf("shop/web"); !slices.Equal(got, []string{"web-a"}) {
		t.Errorf("slices of shop/web after web-b moved: %v", got)
	}
	if got := slicesOf("shop/api"); !slices.Equal(got, []string{"web-b"}) {
		t.Errorf("slices of shop/api after web-b moved: %v", got)
	}
	s := &EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "x"}, Service: "web"}
	if k := s.ServiceKey(); k != "shop/web" {
		t.Errorf("ServiceKey = %q", k)
	}
	if k := (&EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "x"}}).ServiceKey(); k != "" {
		t.Errorf("ServiceKey of a slice of no Service = %q", k)
	}
}
