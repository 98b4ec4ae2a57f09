package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	rspb "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"

	"github.com/upgradeguard/upgradeguard/internal/preflight"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// widgetCRD serves example.com Widget in v1beta1 (deprecated) and v1
// (storage).
const widgetCRD = `{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {
    "group": "example.com", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
    "versions": [
      {"name": "v1beta1", "served": true, "storage": false, "deprecated": true,
       "deprecationWarning": "example.com/v1beta1 Widget is deprecated; use example.com/v1 Widget",
       "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
      {"name": "v1", "served": true, "storage": true,
       "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
    ]
  }
}`

// TestPreflightThroughThanos: the testbed's Prometheus scrapes the real
// kube-apiserver; the test requests a CRD's deprecated version and writes a
// Helm release Secret holding a removed API; preflight, asking Thanos
// Query and the API server, finds both and names the release.
func TestPreflightThroughThanos(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := tb.ScrapeAPIServer("apiserver_request_total", "apiserver_requested_deprecated_apis"); err != nil {
		t.Fatal(err)
	}
	dc, err := dynamic.NewForConfig(tb.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// The CRD, and a client of its deprecated version.
	var crd unstructured.Unstructured
	if err := json.Unmarshal([]byte(widgetCRD), &crd.Object); err != nil {
		t.Fatal(err)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dc.Resource(crdGVR).Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	oldWidgets := dc.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1beta1", Resource: "widgets"}).Namespace("default")
	w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": map[string]any{"name": "w1"}}}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := oldWidgets.Create(ctx, w, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating a v1beta1 Widget (the CRD never became established?): %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Keep requesting the deprecated version while preflight is polled.
	clientCtx, stopClient := context.WithCancel(ctx)
	defer stopClient()
	go func() {
		for clientCtx.Err() == nil {
			_, _ = oldWidgets.List(clientCtx, metav1.ListOptions{})
			time.Sleep(time.Second)
		}
	}()

	// A Helm release whose deployed revision 2 holds a removed PDB and the
	// deprecated Widget; revision 1 (superseded) held a removed Ingress.
	manifest := map[int]string{
		1: "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: front}\n",
		2: "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec: {maxUnavailable: 1}\n---\n" +
			"apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w2}\n---\n" +
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
	}
	for rev, status := range map[int]rspb.Status{1: rspb.StatusSuperseded, 2: rspb.StatusDeployed} {
		data, err := preflight.EncodeHelmRelease(&rspb.Release{Name: "shop-web", Namespace: "default", Version: rev, Manifest: manifest[rev], Info: &rspb.Info{Status: status}})
		if err != nil {
			t.Fatal(err)
		}
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sh.helm.release.v1.shop-web.v%d", rev), Namespace: "default",
				Labels: map[string]string{"owner": "helm", "name": "shop-web", "status": status.String(), "version": fmt.Sprint(rev)}},
			Type: "helm.sh/release.v1",
			Data: map[string][]byte{"release": data},
		}
		if _, err := tb.Client.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	type finding struct {
		Check, Severity, Object, Source, Message, Replacement, NodeGroup string
		RemovedRelease                                                   string `json:"removed_release"`
	}
	var out struct {
		ExitCode int       `json:"exit_code"`
		Findings []finding `json:"findings"`
	}
	find := func(check, severity, object string) (finding, bool) {
		for _, f := range out.Findings {
			if f.Check == check && f.Severity == severity && f.Object == object {
				return f, true
			}
		}
		return finding{}, false
	}
	run := func(checks ...string) (int, string, error) {
		args := []string{"preflight", "--target-version", "1.37", "--kubeconfig", tb.Kubeconfig,
			"--query.url", tb.ThanosQueryURL, "--query.matchers", `cluster="testbed"`, "--apis.window", "5m",
			"-o", "json", "--log.level", "warn"}
		for _, c := range checks {
			args = append(args, "--check", c)
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code, err = ee.ExitCode(), nil
		}
		if err == nil {
			err = json.Unmarshal([]byte(stdout.String()), &out)
		}
		return code, stdout.String() + stderr.String(), err
	}
	// Until Prometheus has scraped the requests twice (the request rate
	// needs two samples), the CRD version is not yet seen by use.
	var code int
	var text string
	deadline = time.Now().Add(4 * time.Minute)
	for {
		code, text, err = run(preflight.FamilyAPIsByUse, preflight.FamilyAPIsBySource)
		if err != nil {
			t.Fatalf("preflight: %v\n%s", err, text)
		}
		if _, ok := find(preflight.FamilyAPIsByUse, "warning", "example.com/v1beta1 widgets"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deprecated Widget version was never found by use; last output:\n%s", text)
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("preflight output:\n%s", text)

	use, _ := find(preflight.FamilyAPIsByUse, "warning", "example.com/v1beta1 widgets")
	if use.Replacement != "example.com/v1 Widget" || !strings.Contains(use.Message, "custom resource") {
		t.Errorf("by use: %+v", use)
	}
	pdb, ok := find(preflight.FamilyAPIsBySource, "blocker", "policy/v1beta1 PodDisruptionBudget default/web")
	if !ok {
		t.Fatalf("no blocker for the Helm release's PDB:\n%s", text)
	}
	if !strings.Contains(pdb.Source, "helm release default/shop-web revision 2") || !strings.Contains(pdb.Message, "Helm release default/shop-web holds it") ||
		pdb.RemovedRelease != "1.25" || pdb.Replacement != "policy/v1 PodDisruptionBudget" {
		t.Errorf("Helm finding: %+v", pdb)
	}
	if f, ok := find(preflight.FamilyAPIsBySource, "warning", "example.com/v1beta1 Widget default/w2"); !ok || f.Replacement != "example.com/v1 Widget" {
		t.Errorf("the release's deprecated Widget: %+v, %v\n%s", f, ok, text)
	}
	for _, f := range out.Findings {
		if strings.Contains(f.Object, "Ingress") || f.Severity == "unknown" {
			t.Errorf("unexpected finding %+v", f)
		}
	}
	if code != preflight.ExitBlockers || out.ExitCode != preflight.ExitBlockers {
		t.Errorf("exit %d (JSON %d), want %d", code, out.ExitCode, preflight.ExitBlockers)
	}

	// Skew, drains and add-ons of the testbed's real cluster: a node group
	// of kubelets too old for a 1.37 control plane, one current; a PDB no
	// eviction can pass, pods with emptyDir volumes.
	for _, n := range []testbed.Node{
		{Name: "legacy-1", Zone: "eu-west-1a", NodeGroup: "legacy", KubeletVersion: "v1.33.5"},
		{Name: "web-1", Zone: "eu-west-1a", NodeGroup: "web"},
		{Name: "web-2", Zone: "eu-west-1b", NodeGroup: "web"},
	} {
		if err := tb.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	zero := intstr.FromInt32(0)
	for _, w := range []testbed.Workload{
		{Namespace: "shop", Name: "db", Replicas: 2, MaxUnavailable: &zero, NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: "web"}},
		{Namespace: "shop", Name: "cache", Replicas: 1, EmptyDir: true, NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: "web"}},
	} {
		if err := tb.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// Until the pods run and the disruption controller has counted them.
	deadline = time.Now().Add(3 * time.Minute)
	for {
		code, text, err = run(preflight.FamilySkew, preflight.FamilyDrain, preflight.FamilyAddons)
		if err != nil {
			t.Fatalf("preflight: %v\n%s", err, text)
		}
		_, pdb := find(preflight.FamilyDrain, "blocker", "PDB shop/db")
		_, local := find(preflight.FamilyDrain, "warning", "node group web")
		if pdb && local {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the drain findings never showed; last output:\n%s", text)
		}
		time.Sleep(3 * time.Second)
	}
	t.Logf("preflight output:\n%s", text)
	if f, ok := find(preflight.FamilySkew, "blocker", "node group legacy"); !ok || f.NodeGroup != "legacy" || !strings.Contains(f.Message, "1 nodes on kubelet 1.33 (legacy-1)") {
		t.Errorf("legacy kubelets: %+v, %v", f, ok)
	}
	if f, ok := find(preflight.FamilySkew, "info", "control plane"); !ok || !strings.Contains(f.Message, "already runs v1.37.2") {
		t.Errorf("control plane: %+v, %v", f, ok)
	}
	if _, ok := find(preflight.FamilySkew, "blocker", "node group web"); ok {
		t.Errorf("the web nodes run the target's kubelet:\n%s", text)
	}
	if f, _ := find(preflight.FamilyDrain, "warning", "node group web"); !strings.Contains(text, "pods with emptyDir volumes (shop/cache-") {
		t.Errorf("emptyDir pods: %+v\n%s", f, text)
	}
	if f, ok := find(preflight.FamilyAddons, "info", "CoreDNS"); !ok || !strings.Contains(f.Message, "not installed") {
		t.Errorf("CoreDNS: %+v, %v", f, ok)
	}
	if code != preflight.ExitBlockers {
		t.Errorf("exit %d, want %d", code, preflight.ExitBlockers)
	}
}
