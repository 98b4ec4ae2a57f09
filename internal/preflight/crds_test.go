package preflight

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func crd(group, kind, plural string, versions ...map[string]any) *unstructured.Unstructured {
	vs := make([]any, len(versions))
	for i, v := range versions {
		vs[i] = v
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group": group, "names": map[string]any{"kind": kind, "plural": plural}, "versions": vs,
		},
	}}
}

func TestAddClusterCRDs(t *testing.T) {
	scheme := runtime.NewScheme()
	dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{crdResource: "CustomResourceDefinitionList"},
		crd("example.com", "Widget", "widgets",
			map[string]any{"name": "v1alpha1", "served": false, "deprecated": true}, // not served: nothing requests it
			map[string]any{"name": "v1beta1", "served": true, "deprecated": true, "deprecationWarning": "use v1"},
			map[string]any{"name": "v1", "served": true, "storage": true}),
		// Every version deprecated: no replacement to name.
		crd("old.io", "Gadget", "gadgets", map[string]any{"name": "v1", "served": true, "storage": true, "deprecated": true}),
		crd("fine.io", "Thing", "things", map[string]any{"name": "v1", "served": true, "storage": true}),
	)
	table := NewAPITable()
	n, err := AddClusterCRDs(context.Background(), dc, table)
	if err != nil || n != 2 {
		t.Fatalf("AddClusterCRDs = %d, %v; want 2", n, err)
	}
	j := table.Judge(gvk("example.com/v1beta1", "Widget"), Version{1, 37})
	if j.Severity != Warning || j.Replacement != "example.com/v1 Widget" || j.Message != "example.com/v1beta1 Widget is a deprecated version of a custom resource: use v1" {
		t.Errorf("v1beta1: %+v", j)
	}
	if got, ok := table.KindOf(schema.GroupVersionResource{Group: "example.com", Version: "v1beta1", Resource: "widgets"}); !ok || got.Kind != "Widget" {
		t.Errorf("KindOf widgets: %v, %v", got, ok)
	}
	if j := table.Judge(gvk("old.io/v1", "Gadget"), Version{1, 37}); j.Severity != Warning || j.Replacement != "" {
		t.Errorf("gadgets: %+v", j)
	}
	for _, k := range []schema.GroupVersionKind{gvk("example.com/v1alpha1", "Widget"), gvk("example.com/v1", "Widget"), gvk("fine.io/v1", "Thing")} {
		if j := table.Judge(k, Version{1, 37}); j.Severity != "" {
			t.Errorf("%s: %+v", gvkString(k), j)
		}
	}
}
