package hold

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func nodePool(name string, labels map[string]string, budgets string) *unstructured.Unstructured {
	np := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"disruption": map[string]any{"consolidationPolicy": "WhenEmptyOrUnderutilized"},
			// Not expiring: the expiry report has its own tests.
			"template": map[string]any{"spec": map[string]any{"expireAfter": "Never"}},
		},
	}}
	np.SetLabels(labels)
	if budgets != "" {
		var b any
		if err := json.Unmarshal([]byte(budgets), &b); err != nil {
			panic(err)
		}
		_ = unstructured.SetNestedField(np.Object, b, "spec", "disruption", "budgets")
	}
	return np
}

func newDynamic(objs ...runtime.Object) *dynfake.FakeDynamicClient {
	return dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{NodePoolResource: "NodePoolList", NodePoolResourceV1Beta1: "NodePoolList", NodeClaimResource: "NodeClaimList"}, objs...)
}

func getPool(t *testing.T, c *dynfake.FakeDynamicClient, name string) *unstructured.Unstructured {
	t.Helper()
	np, err := c.Resource(NodePoolResource).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return np
}

func budgetsJSON(t *testing.T, np *unstructured.Unstructured) string {
	t.Helper()
	b, err := budgets(np)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(b)
	return string(raw)
}

const origBudgets = `[{"nodes":"10%"},{"duration":"8h","nodes":"0","reasons":["Drifted"],"schedule":"0 9 * * mon-fri"}]`

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestNodePoolsPauseAndRestoreExactly(t *testing.T) {
	ctx := context.Background()
	dyn := newDynamic(
		nodePool("general", map[string]string{"team": "web"}, origBudgets),
		nodePool("gpu", nil, `[{"nodes":"1"}]`),
		nodePool("other", map[string]string{"team": "data"}, `[{"nodes":"5"}]`),
		nodePool("bare", map[string]string{"team": "web"}, ""),
	)
	kc := fake.NewClientset()
	r, reg, logs := reporter(t, kc)
	n := &NodePools{Client: dyn, Names: []string{"gpu"}, Selector: "team=web"}
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"general", "gpu", "bare"} {
		np := getPool(t, dyn, name)
		if got := budgetsJSON(t, np); got != `[{"nodes":"0"}]` {
			t.Errorf("%s paused: budgets %s", name, got)
		}
		if np.GetLabels()[LabelHeld] == "" || np.GetAnnotations()[AnnotationSince] == "" {
			t.Errorf("%s paused without the hold's label and time: %v %v", name, np.GetLabels(), np.GetAnnotations())
		}
		if v := gauge(t, reg, "upgradeguard_hold_active", "nodepool/"+name); v != 1 {
			t.Errorf("hold_active{nodepool/%s} = %v", name, v)
		}
	}
	if got := budgetsJSON(t, getPool(t, dyn, "other")); got != `[{"nodes":"5"}]` {
		t.Errorf("an unselected NodePool was changed: %s", got)
	}
	if !strings.Contains(logs.String(), "TestFault firing") {
		t.Errorf("the pause was not logged with the gate's reasons:\n%s", logs)
	}
	evs := events(t, kc)
	if len(evs) != 3 || evs[0].Reason != ReasonPaused || evs[0].InvolvedObject.Kind != "NodePool" || !strings.Contains(evs[0].Message, "TestFault firing") {
		t.Errorf("Events %+v, want 3 %s on the NodePools with the reasons", evs, ReasonPaused)
	}

	// Idempotent: a second hold changes nothing.
	rv := getPool(t, dyn, "general").GetResourceVersion()
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if getPool(t, dyn, "general").GetResourceVersion() != rv || len(events(t, kc)) != 3 {
		t.Error("a second hold decision changed a paused NodePool")
	}

	// A restarted controller, with another selector, restores every pool the
	// hold paused from the annotations alone.
	r2, _, _ := reporter(t, kc)
	n2 := &NodePools{Client: dyn}
	if err := n2.Apply(ctx, releaseDecision(), r2); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"general": origBudgets, "gpu": `[{"nodes":"1"}]`, "other": `[{"nodes":"5"}]`} {
		np := getPool(t, dyn, name)
		if got := budgetsJSON(t, np); !sameJSON(t, got, want) {
			t.Errorf("%s restored to %s, want %s", name, got, want)
		}
		if len(np.GetAnnotations()) != 0 || np.GetLabels()[LabelHeld] != "" {
			t.Errorf("%s keeps the hold's marks: %v %v", name, np.GetLabels(), np.GetAnnotations())
		}
	}
	// A pool that had no budgets has none again (Karpenter's default applies).
	if b, _ := budgets(getPool(t, dyn, "bare")); b != nil {
		t.Errorf("bare restored to %v, want no budgets", b)
	}
}

func TestNodePoolChangedByAPersonWhilePaused(t *testing.T) {
	ctx := context.Background()
	dyn := newDynamic(nodePool("general", nil, `[{"nodes":"10%"}]`))
	kc := fake.NewClientset()
	r, reg, _ := reporter(t, kc)
	n := &NodePools{Client: dyn, Names: []string{"general"}}
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	// An operator lets one node go during the hold.
	np := getPool(t, dyn, "general")
	_ = unstructured.SetNestedField(np.Object, []any{map[string]any{"nodes": "1"}}, "spec", "disruption", "budgets")
	if _, err := dyn.Resource(NodePoolResource).Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The next hold decision does not overwrite it, and says so once.
	for range 2 {
		if err := n.Apply(ctx, holdDecision(), r); err != nil {
			t.Fatal(err)
		}
	}
	np = getPool(t, dyn, "general")
	if got := budgetsJSON(t, np); got != `[{"nodes":"1"}]` {
		t.Errorf("the person's budgets were overwritten: %s", got)
	}
	if np.GetAnnotations()[AnnotationYielded] == "" {
		t.Error("no yielded mark")
	}
	if v := gauge(t, reg, "upgradeguard_hold_active", "nodepool/general"); v != 0 {
		t.Errorf("hold_active %v for a NodePool left to a person", v)
	}
	yields := 0
	for _, e := range events(t, kc) {
		if e.Reason == ReasonYielded {
			yields++
			if !strings.Contains(e.Message, `[{"nodes":"10%"}]`) {
				t.Errorf("the Event does not give the budgets before the hold: %s", e.Message)
			}
		}
	}
	if yields != 1 {
		t.Errorf("%d %s Events, want 1", yields, ReasonYielded)
	}
	// The hold ends: the person's budgets stay, the hold's marks go.
	if err := n.Apply(ctx, releaseDecision(), r); err != nil {
		t.Fatal(err)
	}
	np = getPool(t, dyn, "general")
	if got := budgetsJSON(t, np); got != `[{"nodes":"1"}]` {
		t.Errorf("after the hold: %s, want the person's budgets", got)
	}
	if len(np.GetAnnotations()) != 0 || len(np.GetLabels()) != 0 {
		t.Errorf("marks left: %v %v", np.GetLabels(), np.GetAnnotations())
	}
	// The next hold pauses it again and keeps the person's budgets as the
	// ones to restore.
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if got := getPool(t, dyn, "general").GetAnnotations()[AnnotationBudgets]; got != `[{"nodes":"1"}]` {
		t.Errorf("second hold keeps %s", got)
	}
}

func TestNodePoolMissingIsAnErrorOthersStillHeld(t *testing.T) {
	dyn := newDynamic(nodePool("general", nil, `[{"nodes":"10%"}]`))
	r, _, _ := reporter(t, nil)
	n := &NodePools{Client: dyn, Names: []string{"general", "gone"}}
	err := n.Apply(context.Background(), holdDecision(), r)
	if err == nil || !strings.Contains(err.Error(), "gone not found") {
		t.Errorf("err %v, want the missing NodePool named", err)
	}
	if got := budgetsJSON(t, getPool(t, dyn, "general")); got != `[{"nodes":"0"}]` {
		t.Errorf("general not paused: %s", got)
	}
}

func TestNodePoolsWithoutKarpenter(t *testing.T) {
	// A client whose API knows no NodePool resource answers 404.
	dyn := newDynamic()
	notServing(dyn, "v1")
	notServing(dyn, "v1beta1")
	kc := fake.NewClientset()
	r, _, logs := reporter(t, kc)
	n := &NodePools{Client: dyn, Names: []string{"general"}, Selector: "team=web"}
	for range 3 {
		if err := n.Apply(context.Background(), holdDecision(), r); err != nil {
			t.Errorf("without Karpenter: %v, want nothing to pause", err)
		}
	}
	if n.Served() != (schema.GroupVersionResource{}) {
		t.Errorf("served %v", n.Served())
	}
	// Said once, not silently and not at every evaluation.
	if c := strings.Count(logs.String(), "serves no Karpenter NodePools"); c != 1 {
		t.Errorf("%d log records that Karpenter is not installed, want 1:\n%s", c, logs)
	}
	evs := events(t, kc)
	if len(evs) != 1 || evs[0].Reason != ReasonWaiting || evs[0].InvolvedObject.Kind != "Lease" || !strings.Contains(evs[0].Message, "v1beta1") || !strings.Contains(evs[0].Message, "general") {
		t.Errorf("Events %+v, want one %s on the Lease naming both versions and the pool", evs, ReasonWaiting)
	}
}

// notServing makes the fake answer 404, as an API server that does not
// serve the resource, to every request for NodePools of version.
func notServing(dyn *dynfake.FakeDynamicClient, version string) {
	dyn.PrependReactor("*", "nodepools", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetResource().Version != version {
			return false, nil, nil
		}
		return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), "")
	})
}

func v1beta1Pool(name string, labels map[string]string, budgets string) *unstructured.Unstructured {
	np := nodePool(name, labels, budgets)
	np.SetAPIVersion("karpenter.sh/v1beta1")
	unstructured.RemoveNestedField(np.Object, "spec", "template")
	_ = unstructured.SetNestedField(np.Object, "WhenUnderutilized", "spec", "disruption", "consolidationPolicy")
	_ = unstructured.SetNestedField(np.Object, "720h", "spec", "disruption", "expireAfter")
	return np
}

func TestNodePoolsV1Beta1Only(t *testing.T) {
	ctx := context.Background()
	dyn := newDynamic(
		v1beta1Pool("general", map[string]string{"team": "web"}, origBudgets),
		v1beta1Pool("gpu", nil, ""),
		v1beta1Pool("other", nil, `[{"nodes":"5"}]`),
	)
	notServing(dyn, "v1") // Karpenter 0.3x: karpenter.sh/v1beta1 only
	kc := fake.NewClientset()
	r, reg, logs := reporter(t, kc)
	n := &NodePools{Client: dyn, Names: []string{"gpu"}, Selector: "team=web"}
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if n.Served() != NodePoolResourceV1Beta1 {
		t.Errorf("served %v, want v1beta1", n.Served())
	}
	get := func(name string) *unstructured.Unstructured {
		t.Helper()
		np, err := dyn.Resource(NodePoolResourceV1Beta1).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return np
	}
	for _, name := range []string{"general", "gpu"} {
		np := get(name)
		if got := budgetsJSON(t, np); got != `[{"nodes":"0"}]` {
			t.Errorf("%s: budgets %s, want paused", name, got)
		}
		if np.GetLabels()[LabelHeld] != "paused" || np.GetAnnotations()[AnnotationSince] == "" {
			t.Errorf("%s: marks %v %v", name, np.GetLabels(), np.GetAnnotations())
		}
		if v := gauge(t, reg, "upgradeguard_hold_active", "nodepool/"+name); v != 1 {
			t.Errorf("hold_active{nodepool/%s} = %v", name, v)
		}
	}
	if got := budgetsJSON(t, get("other")); got != `[{"nodes":"5"}]` {
		t.Errorf("an unselected pool changed: %s", got)
	}
	if !strings.Contains(logs.String(), "apiVersion=karpenter.sh/v1beta1") {
		t.Errorf("the version found was not logged:\n%s", logs)
	}
	for _, e := range events(t, kc) {
		if e.Reason != ReasonPaused || e.InvolvedObject.APIVersion != "karpenter.sh/v1beta1" {
			t.Errorf("Event %s on %s/%s, want only %s on karpenter.sh/v1beta1 NodePools (v1beta1 expiry is budgeted: no expiry report)",
				e.Reason, e.InvolvedObject.APIVersion, e.InvolvedObject.Name, ReasonPaused)
		}
	}
	for _, a := range dyn.Actions() {
		if a.GetResource().Resource == "nodeclaims" {
			t.Errorf("v1beta1: the hold asked for NodeClaims (%s)", a.GetVerb())
		}
	}

	// A restarted controller restores exactly, in v1beta1 too.
	r2, _, _ := reporter(t, kc)
	if err := (&NodePools{Client: dyn}).Apply(ctx, releaseDecision(), r2); err != nil {
		t.Fatal(err)
	}
	if got := budgetsJSON(t, get("general")); !sameJSON(t, got, origBudgets) {
		t.Errorf("general restored to %s, want %s", got, origBudgets)
	}
	if b, _ := budgets(get("gpu")); b != nil {
		t.Errorf("gpu restored to %v, want none", b)
	}
	for _, name := range []string{"general", "gpu"} {
		if np := get(name); len(np.GetAnnotations()) != 0 || np.GetLabels()[LabelHeld] != "" {
			t.Errorf("%s keeps the hold's marks: %v %v", name, np.GetLabels(), np.GetAnnotations())
		}
	}
}

func TestNodePoolsBothVersionsServedUsesV1(t *testing.T) {
	ctx := context.Background()
	// The fake keeps each version apart; a real API server converts. Only
	// the v1 pool must be touched.
	dyn := newDynamic(nodePool("general", nil, `[{"nodes":"1"}]`), v1beta1Pool("general", nil, `[{"nodes":"2"}]`))
	r, _, _ := reporter(t, nil)
	n := &NodePools{Client: dyn, Names: []string{"general"}}
	if err := n.Apply(ctx, holdDecision(), r); err != nil {
		t.Fatal(err)
	}
	if n.Served() != NodePoolResource {
		t.Errorf("served %v, want v1", n.Served())
	}
	if got := budgetsJSON(t, getPool(t, dyn, "general")); got != `[{"nodes":"0"}]` {
		t.Errorf("v1 pool: %s, want paused", got)
	}
	for _, a := range dyn.Actions() {
		if a.GetResource().Version == "v1beta1" {
			t.Errorf("a cluster serving v1 was asked for v1beta1: %s", a.GetVerb())
		}
	}
}
