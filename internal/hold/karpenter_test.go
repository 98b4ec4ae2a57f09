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
		"spec":     map[string]any{"disruption": map[string]any{"consolidationPolicy": "WhenEmptyOrUnderutilized"}},
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
		map[schema.GroupVersionResource]string{NodePoolResource: "NodePoolList"}, objs...)
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
	// A client whose API knows no NodePool resource answers 404 to a list.
	dyn := newDynamic()
	dyn.PrependReactor("list", "nodepools", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(NodePoolResource.GroupResource(), "")
	})
	r, _, _ := reporter(t, nil)
	n := &NodePools{Client: dyn, Selector: "team=web"}
	if err := n.Apply(context.Background(), holdDecision(), r); err != nil {
		t.Errorf("without Karpenter: %v, want nothing to pause", err)
	}
}
