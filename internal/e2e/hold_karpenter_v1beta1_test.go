package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/hold"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// karpenterV1Beta1Version is the Karpenter 0.37 module whose NodePool CRD
// the v1beta1 test installs. The proxy serves v0.37.0 and v0.37.1 of 0.37;
// v0.37.1's CRD also serves karpenter.sh/v1 (the path to Karpenter 1.0),
// v0.37.0's serves karpenter.sh/v1beta1 only: a cluster of Karpenter 0.3x.
const karpenterV1Beta1Version = "v0.37.0"

func newV1Beta1NodePool(name, budgets string) *unstructured.Unstructured {
	np := &unstructured.Unstructured{}
	spec := ""
	if budgets != "" {
		spec = "\n    budgets: " + budgets
	}
	err := yaml.Unmarshal(fmt.Appendf(nil, `apiVersion: karpenter.sh/v1beta1
kind: NodePool
metadata:
  name: %s
  labels:
    upgradeguard.io/hold-enabled: "true"
spec:
  disruption:
    consolidationPolicy: WhenUnderutilized
    expireAfter: 720h%s
  template:
    spec:
      nodeClassRef:
        apiVersion: karpenter.k8s.aws/v1beta1
        kind: EC2NodeClass
        name: default
      requirements:
      - key: kubernetes.io/arch
        operator: In
        values: [amd64]
`, name, spec), &np.Object)
	if err != nil {
		panic(err)
	}
	return np
}

type v1beta1TestGate struct{}

func (v1beta1TestGate) Evaluate(context.Context, string) (gate.Evaluation, error) {
	return gate.Evaluation{Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Fail, Why: "V1Beta1TestFault firing"}}}, nil
}

// TestGateHoldKarpenterV1Beta1: a cluster serving Karpenter 0.37's NodePool
// CRD (karpenter.sh/v1beta1 only; v1 answers 404) is held and restored
// exactly by the NodePools target, with deploy/hold's RBAC.
func TestGateHoldKarpenterV1Beta1(t *testing.T) {
	tb := testbed.ForTest(t, testbed.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin, err := dynamic.NewForConfig(tb.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	installNodePoolCRDOf(ctx, t, admin, karpenterV1Beta1Version, hold.NodePoolResourceV1Beta1)
	if _, err := admin.Resource(hold.NodePoolResource).List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("karpenter.sh/v1 NodePools: %v, want 404 (Karpenter 0.37's CRD serves v1beta1 only)", err)
	}
	pools := admin.Resource(hold.NodePoolResourceV1Beta1)
	for name, b := range map[string]string{
		"general": `[{"nodes": "10%"}, {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h"}]`,
		"batch":   "", // the CRD's default budgets
	} {
		if _, err := pools.Create(ctx, newV1Beta1NodePool(name, b), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	other := newV1Beta1NodePool("other", `[{"nodes": "5"}]`)
	other.SetLabels(nil)
	if _, err := pools.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// As stored, with the CRD's defaults: what a restore gives back.
	stored := map[string]*unstructured.Unstructured{}
	for _, name := range []string{"general", "batch", "other"} {
		np, err := pools.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stored[name] = np
	}
	if b, _, _ := unstructured.NestedSlice(stored["batch"].Object, "spec", "disruption", "budgets"); len(b) != 1 {
		t.Fatalf("batch's defaulted budgets: %v", b)
	}

	// The hold runs as deploy/hold's ServiceAccount.
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "upgradeguard"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applyYAML(ctx, t, tb, filepath.Join("..", "..", "deploy", "hold", "rbac.yaml"))
	cfg, err := clientcmd.BuildConfigFromFlags("", saKubeconfig(ctx, t, tb, "upgradeguard", "upgradeguard-hold"))
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reporter := func() *hold.Reporter {
		c, err := hold.New(hold.Config{Gate: v1beta1TestGate{}, Client: kc,
			Anchor: corev1.ObjectReference{APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Namespace: "upgradeguard", Name: "upgradeguard-hold"}})
		if err != nil {
			t.Fatal(err)
		}
		return c.Reporter()
	}
	e, _ := v1beta1TestGate{}.Evaluate(ctx, "")
	holdD := hold.Decision{Action: hold.Hold, Verdict: gate.WAIT, Evaluation: e}

	n := &hold.NodePools{Client: dyn, Names: []string{"batch"}, Selector: "upgradeguard.io/hold-enabled=true"}
	r := reporter()
	for range 2 { // the second changes nothing
		if err := n.Apply(ctx, holdD, r); err != nil {
			t.Fatal(err)
		}
	}
	if n.Served() != hold.NodePoolResourceV1Beta1 {
		t.Errorf("served %v, want karpenter.sh/v1beta1", n.Served())
	}
	for _, name := range []string{"general", "batch"} {
		np, err := pools.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := unstructured.NestedFieldCopy(np.Object, "spec", "disruption", "budgets")
		if !reflect.DeepEqual(b, []any{map[string]any{"nodes": "0"}}) {
			t.Errorf("%s held: budgets %s, want [{nodes: 0}]", name, asJSON(b))
		}
		if np.GetLabels()[hold.LabelHeld] != "paused" || np.GetAnnotations()[hold.AnnotationBudgets] == "" {
			t.Errorf("%s held without the hold's marks: %v %v", name, np.GetLabels(), np.GetAnnotations())
		}
		if np.GetGeneration() != stored[name].GetGeneration()+1 {
			t.Errorf("%s: generation %d, want one change (%d)", name, np.GetGeneration(), stored[name].GetGeneration()+1)
		}
	}
	if np, err := pools.Get(ctx, "other", metav1.GetOptions{}); err != nil || np.GetResourceVersion() != stored["other"].GetResourceVersion() {
		t.Errorf("the unselected pool changed (%v)", err)
	}
	evs, err := tb.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	paused := map[string]bool{}
	for _, ev := range evs.Items {
		switch {
		case ev.Reason == hold.ReasonPaused && ev.InvolvedObject.APIVersion == "karpenter.sh/v1beta1" && ev.InvolvedObject.Kind == "NodePool":
			paused[ev.InvolvedObject.Name] = true
		case ev.Reason == hold.ReasonNotHeld:
			// v1beta1 expiration takes the budget: nothing to report.
			t.Errorf("an expiry Event on a v1beta1 pool: %s", ev.Message)
		}
	}
	if !paused["general"] || !paused["batch"] || len(paused) != 2 {
		t.Errorf("%s Events on v1beta1 NodePools %v, want general and batch", hold.ReasonPaused, paused)
	}

	// A restarted controller, with no selection, restores every pool it
	// paused from the pools alone, exactly as stored.
	release := hold.Decision{Action: hold.Release, Verdict: gate.GO, Evaluation: gate.Evaluation{Consecutive: 2,
		Checks: []gate.CheckResult{{Name: "alerts", Status: gate.Pass}}}}
	if err := (&hold.NodePools{Client: dyn}).Apply(ctx, release, reporter()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"general", "batch", "other"} {
		np, err := pools.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := np.Object["spec"], stored[name].Object["spec"]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s restored to spec %s, want %s", name, asJSON(got), asJSON(want))
		}
		if !reflect.DeepEqual(np.GetLabels(), stored[name].GetLabels()) || len(np.GetAnnotations()) != 0 {
			t.Errorf("%s keeps marks: %v %v", name, np.GetLabels(), np.GetAnnotations())
		}
	}
}
