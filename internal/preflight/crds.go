package preflight

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// AddClusterCRDs adds to the table the versions the cluster's
// CustomResourceDefinitions mark deprecated (spec.versions[].deprecated),
// with their deprecationWarning, and as replacement the CRD's storage
// version when it is served and not deprecated (else the newest such
// version). It returns how many deprecated versions it found.
func AddClusterCRDs(ctx context.Context, dc dynamic.Interface, t *APITable) (int, error) {
	list, err := dc.Resource(crdResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("listing CustomResourceDefinitions: %w", err)
	}
	n := 0
	for _, crd := range list.Items {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		var replacement schema.GroupVersionKind
		type ver struct {
			name, warning               string
			served, deprecated, storage bool
		}
		var vs []ver
		for _, v := range versions {
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			var x ver
			x.name, _, _ = unstructured.NestedString(m, "name")
			x.warning, _, _ = unstructured.NestedString(m, "deprecationWarning")
			x.served, _, _ = unstructured.NestedBool(m, "served")
			x.deprecated, _, _ = unstructured.NestedBool(m, "deprecated")
			x.storage, _, _ = unstructured.NestedBool(m, "storage")
			vs = append(vs, x)
			if x.served && !x.deprecated && (x.storage || replacement.Empty()) {
				replacement = schema.GroupVersionKind{Group: group, Version: x.name, Kind: kind}
			}
		}
		for _, x := range vs {
			if x.deprecated && x.served {
				t.AddCRDVersion(schema.GroupVersionKind{Group: group, Version: x.name, Kind: kind}, plural, x.warning, replacement)
				n++
			}
		}
	}
	return n, nil
}
