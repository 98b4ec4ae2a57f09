package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// Karpenter on the testbed (Options.Karpenter): sigs.k8s.io/karpenter's
// kwok provider, a fake cloud provider with built-in instance types. For a
// NodeClaim it creates a Node carrying kwok.x-k8s.io/node=fake, which the
// testbed's kwok makes Ready and keeps alive like any other kwok node.

// The Karpenter resources, for a dynamic client (NewDynamic).
var (
	NodePoolGVR      = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
	NodeClaimGVR     = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodeclaims"}
	KWOKNodeClassGVR = schema.GroupVersionResource{Group: "karpenter.kwok.sh", Version: "v1alpha1", Resource: "kwoknodeclasses"}
	crdGVR           = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// KWOKNodeClassName is the KWOKNodeClass the testbed creates and
// CreateNodePool refers to.
const KWOKNodeClassName = "default"

// karpenterCRDs are the CRD files deps.sh caches that must be there; every
// *.yaml in the directory is installed.
var karpenterCRDs = []string{
	"karpenter.sh_nodepools.yaml",
	"karpenter.sh_nodeclaims.yaml",
	"karpenter.sh_nodeoverlays.yaml",
	"karpenter.kwok.sh_kwoknodeclasses.yaml",
}

const (
	karpenterPorts   = 2 // metrics, health probe
	karpenterTimeout = 120 * time.Second
)

// findBinaries is FindBinaries for o: with Options.Karpenter, Karpenter and
// its CRDs too.
func findBinaries(o Options) (Binaries, error) {
	b, err := FindBinaries(o.Prometheus)
	if o.Karpenter {
		if missing := b.findKarpenter(); len(missing) > 0 {
			err = errors.Join(err, fmt.Errorf("testbed binaries missing (run make testbed-deps): %s", strings.Join(missing, ", ")))
		}
	}
	return b, err
}

// findKarpenter sets b.Karpenter and b.KarpenterCRDs and returns the paths
// of those missing.
func (b *Binaries) findKarpenter() []string {
	d := filepath.Join(CacheDir(), "karpenter-"+KarpenterVersion)
	b.Karpenter = filepath.Join(d, "karpenter-kwok")
	b.KarpenterCRDs = filepath.Join(d, "crds")
	if _, err := os.Stat(d); err != nil {
		return []string{filepath.Join(d, "{karpenter-kwok,crds/*.yaml}")}
	}
	var missing []string
	for _, p := range append([]string{"karpenter-kwok"}, karpenterCRDs...) {
		if !strings.HasSuffix(p, "karpenter-kwok") {
			p = filepath.Join("crds", p)
		}
		if st, err := os.Stat(filepath.Join(d, p)); err != nil || st.Size() == 0 {
			missing = append(missing, filepath.Join(d, p))
		}
	}
	return missing
}

// NewDynamic returns an admin dynamic client, for the Karpenter resources
// (NodePoolGVR, NodeClaimGVR, KWOKNodeClassGVR).
func (tb *Testbed) NewDynamic() (dynamic.Interface, error) {
	return dynamic.NewForConfig(tb.RESTConfig())
}

// startKarpenter installs the CRDs, runs Karpenter (process "karpenter",
// admin kubeconfig, no leader election), waits for its /readyz (caches
// synced, NodePool and NodeClaim known) and creates the KWOKNodeClass.
func (tb *Testbed) startKarpenter(ctx context.Context, ps *portSet, ports []int) error {
	o := tb.o
	began := time.Now()
	metricsPort, healthPort := ports[0], ports[1]
	dyn, err := tb.NewDynamic()
	if err != nil {
		return err
	}
	if err := installCRDs(ctx, dyn, tb.Binaries.KarpenterCRDs); err != nil {
		return fmt.Errorf("karpenter: %w", err)
	}
	o.Logf("testbed: Karpenter CRDs established after %s", since(began))

	ps.release(metricsPort, healthPort)
	// Karpenter binds both on all interfaces (":port"); it has no flag for
	// the address.
	env := []string{
		"KUBECONFIG=" + tb.Kubeconfig,
		"DISABLE_LEADER_ELECTION=true",
		fmt.Sprintf("METRICS_PORT=%d", metricsPort),
		fmt.Sprintf("HEALTH_PROBE_PORT=%d", healthPort),
		"LOG_LEVEL=info",
		// Defaults, stated so that the test's environment cannot change them.
		"FEATURE_GATES=",
		"KUBE_CLIENT_QPS=200", "KUBE_CLIENT_BURST=300",
	}
	p, err := tb.startProcEnv("karpenter", 0, tb.Binaries.Karpenter, nil, env)
	if err != nil {
		return err
	}
	tb.KarpenterMetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	if err := waitProcs(ctx, karpenterTimeout, "karpenter /readyz", []*Process{p}, httpOK(readyz, "")); err != nil {
		return err
	}
	o.Logf("testbed: karpenter /readyz ok after %s", since(began))

	nc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.kwok.sh/v1alpha1",
		"kind":       "KWOKNodeClass",
		"metadata":   map[string]any{"name": KWOKNodeClassName},
		"spec":       map[string]any{},
	}}
	if _, err := dyn.Resource(KWOKNodeClassGVR).Create(ctx, nc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("karpenter: creating KWOKNodeClass %s: %w", KWOKNodeClassName, err)
	}
	o.Logf("testbed: Karpenter ready after %s", since(began))
	return nil
}

// installCRDs creates every CRD in dir/*.yaml and waits until each is
// Established.
func installCRDs(ctx context.Context, dyn dynamic.Interface, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRDs in %s", dir)
	}
	sort.Strings(files)
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("%s: kind %q, want CustomResourceDefinition", f, u.GetKind())
		}
		if _, err := dyn.Resource(crdGVR).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", u.GetName(), err)
		}
		names = append(names, u.GetName())
	}
	return WaitFor(ctx, 60*time.Second, "CRDs established", func(ctx context.Context) (bool, error) {
		for _, n := range names {
			u, err := dyn.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			ok := false
			for _, c := range conds {
				if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
					ok = true
				}
			}
			if !ok {
				return false, fmt.Errorf("CRD %s not Established yet", n)
			}
		}
		return true, nil
	})
}

// CreateNodePool creates a karpenter.sh/v1 NodePool. spec is the NodePool's
// spec as it would be written in YAML; whatever it leaves out of
// template.spec gets defaults: nodeClassRef to the testbed's KWOKNodeClass
// and requirements [] (every built-in instance type). nil spec is a
// NodePool with only those defaults. It returns once Karpenter reports the
// NodePool Ready (within 30 s), with the NodePool as last read.
func (tb *Testbed) CreateNodePool(ctx context.Context, name string, spec map[string]any) (*unstructured.Unstructured, error) {
	if tb.Binaries.Karpenter == "" {
		return nil, errors.New("CreateNodePool: the testbed runs without Options.Karpenter")
	}
	// A copy, in JSON's types (the caller's map is not changed; typed
	// slices and ints become []any and float64, as unstructured wants).
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("CreateNodePool: spec: %w", err)
	}
	spec = nil
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("CreateNodePool: spec: %w", err)
	}
	if spec == nil {
		spec = map[string]any{}
	}
	if _, ok := spec["template"]; !ok {
		spec["template"] = map[string]any{}
	}
	tmpl, ok := spec["template"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("CreateNodePool: spec.template is a %T, want map[string]any", spec["template"])
	}
	if _, ok := tmpl["spec"]; !ok {
		tmpl["spec"] = map[string]any{}
	}
	ts, ok := tmpl["spec"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("CreateNodePool: spec.template.spec is a %T, want map[string]any", tmpl["spec"])
	}
	if _, ok := ts["nodeClassRef"]; !ok {
		ts["nodeClassRef"] = map[string]any{"group": KWOKNodeClassGVR.Group, "kind": "KWOKNodeClass", "name": KWOKNodeClassName}
	}
	if _, ok := ts["requirements"]; !ok {
		ts["requirements"] = []any{}
	}
	np := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.sh/v1",
		"kind":       "NodePool",
		"metadata":   map[string]any{"name": name},
		"spec":       spec,
	}}
	dyn, err := tb.NewDynamic()
	if err != nil {
		return nil, err
	}
	if _, err := dyn.Resource(NodePoolGVR).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	// Karpenter's provisioner ignores a NodePool until it is Ready ("ignoring
	// nodepool, not ready"), and retries only at its next batch.
	var got *unstructured.Unstructured
	err = WaitFor(ctx, 30*time.Second, "NodePool "+name+" Ready", func(ctx context.Context) (bool, error) {
		got, err = dyn.Resource(NodePoolGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Ready" {
				if m["status"] == "True" {
					return true, nil
				}
				return false, fmt.Errorf("NodePool %s: Ready=%v: %v", name, m["status"], m["message"])
			}
		}
		return false, fmt.Errorf("NodePool %s has no Ready condition yet", name)
	})
	return got, err
}
