package e2e

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/hold"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// karpenterVersion is the Karpenter module whose NodePool CRD the test
// installs, read from the module cache (go mod download), never copied.
const karpenterVersion = "v1.15.0"

const holdPolicy = `consecutive: 2
interval: 3s
monitoring:
  aws_max_age: 0s
  watchdog: ""  # this testbed's Prometheus loads no bundle rules, so no UpgradeGuardWatchdog
capacity:
  ips: false
  quotas: false
nodes:
  groups: false  # the exporter runs no AWS collector: no Auto Scaling series, UNKNOWN otherwise
drain:
  enabled: false
availability:
  enabled: false  # this cluster runs no Service; the check has its own test
`

const holdInterval = 3 * time.Second

const holdRules = `groups:
- name: holdtest
  rules:
  - alert: HoldTestFault
    expr: hold_test_fault > 0
    labels:
      severity: warning
    annotations:
      summary: A fault injected by the hold test.
`

// installNodePoolCRD creates Karpenter's NodePool CRD from the module cache
// and waits until it is established.
func installNodePoolCRD(ctx context.Context, t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	installNodePoolCRDOf(ctx, t, dyn, karpenterVersion, hold.NodePoolResource)
}

// installNodePoolCRDOf creates the NodePool CRD of Karpenter module
// version and waits until it is established and gvr is served.
func installNodePoolCRDOf(ctx context.Context, t *testing.T, dyn dynamic.Interface, karpenterVersion string, gvr schema.GroupVersionResource) {
	t.Helper()
	// go mod download verifies the module against the checksum database;
	// it does not extract a module that asks for a newer Go than this one
	// (v1.15.0 asks for 1.26.9), but still names its verified zip.
	out, _ := exec.CommandContext(ctx, "go", "mod", "download", "-json", "sigs.k8s.io/karpenter@"+karpenterVersion).Output()
	var mod struct{ Dir, Zip, Sum, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Zip == "" || mod.Sum == "" {
		t.Fatalf("go mod download sigs.k8s.io/karpenter@%s: %s %v", karpenterVersion, mod.Error, err)
	}
	const crdPath = "pkg/apis/crds/karpenter.sh_nodepools.yaml"
	var raw []byte
	if mod.Dir != "" {
		b, err := os.ReadFile(filepath.Join(mod.Dir, filepath.FromSlash(crdPath)))
		if err != nil {
			t.Fatal(err)
		}
		raw = b
	} else {
		zr, err := zip.OpenReader(mod.Zip)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		f, err := zr.Open("sigs.k8s.io/karpenter@" + karpenterVersion + "/" + crdPath)
		if err != nil {
			t.Fatalf("%s in %s: %v", crdPath, mod.Zip, err)
		}
		raw, err = io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(raw, &crd.Object); err != nil {
		t.Fatalf("the NodePool CRD: %v", err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the NodePool CRD: %v", err)
	}
	err := testbed.WaitFor(ctx, time.Minute, "the NodePool CRD established", func(ctx context.Context) (bool, error) {
		c, err := crds.Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		for _, x := range conds {
			if m, ok := x.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				// The resource is served once discovery has it.
				_, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
				return err == nil, err
			}
		}
		return false, fmt.Errorf("not established yet")
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newNodePool(name, budgets string) *unstructured.Unstructured {
	np := &unstructured.Unstructured{}
	err := yaml.Unmarshal(fmt.Appendf(nil, `apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: %s
  labels:
    upgradeguard.io/hold-enabled: "true"
spec:
  disruption:
    consolidationPolicy: WhenEmptyOrUnderutilized
    consolidateAfter: 30s
    budgets: %s
  template:
    spec:
      nodeClassRef:
        group: karpenter.k8s.aws
        kind: EC2NodeClass
        name: default
      requirements:
      - key: kubernetes.io/arch
        operator: In
        values: [amd64]
`, name, budgets), &np.Object)
	if err != nil {
		panic(err)
	}
	return np
}

func poolBudgets(ctx context.Context, dyn dynamic.Interface, name string) (any, *unstructured.Unstructured, error) {
	np, err := dyn.Resource(hold.NodePoolResource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	b, _, err := unstructured.NestedFieldCopy(np.Object, "spec", "disruption", "budgets")
	return b, np, err
}

// firingSince returns when a firing alert became active in a Prometheus
// (its /api/v1/alerts activeAt), or zero while it does not fire.
func firingSince(ctx context.Context, promURL, name string) (time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, promURL+"/api/v1/alerts", nil)
	if err != nil {
		return time.Time{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string `json:"labels"`
				State    string            `json:"state"`
				ActiveAt time.Time         `json:"activeAt"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return time.Time{}, err
	}
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name && a.State == "firing" {
			return a.ActiveAt, nil
		}
	}
	return time.Time{}, nil
}

func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// saKubeconfig returns a kubeconfig with a token of a ServiceAccount.
func saKubeconfig(ctx context.Context, t *testing.T, tb *testbed.Testbed, ns, sa string) string {
	t.Helper()
	tok, err := tb.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(7200))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(tb.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Token = tok.Status.Token
	}
	path := filepath.Join(t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// applyYAML creates the objects of a deploy file (ServiceAccount, RBAC).
func applyYAML(ctx context.Context, t *testing.T, tb *testbed.Testbed, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if err := createTyped(ctx, tb, obj); err != nil {
			t.Fatalf("applying %s: %v", path, err)
		}
	}
}

// holdContainer runs deploy/hold's container for the fake kubelet: the
// pod's args with the testbed's query URL and local ports, the
// ServiceAccount's token instead of the in-cluster one, and the env the
// pod's fieldRefs give.
type holdContainer struct {
	t          *testing.T
	tb         *testbed.Testbed
	bin        string
	pod        *corev1.Pod
	kubeconfig string
	extra      []string
	env        []string
	addr       string // --web.listen-address
	health     string // --web.health-address
	proc       *testbed.Process
	runs       int
}

func (h *holdContainer) start() {
	h.t.Helper()
	h.runs++
	c := h.pod.Spec.Containers[0]
	argv := []string{h.bin}
	for _, a := range c.Args {
		switch {
		case strings.HasPrefix(a, "--query.url="):
			a = "--query.url=" + h.tb.ThanosQueryURL
		case strings.HasPrefix(a, "--web.listen-address="):
			a = "--web.listen-address=" + h.addr
		case strings.HasPrefix(a, "--web.health-address="):
			a = "--web.health-address=" + h.health
		}
		argv = append(argv, a)
	}
	argv = append(argv, append([]string{"--kubeconfig", h.kubeconfig}, h.extra...)...)
	env := append([]string{}, h.env...)
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.namespace":
				env = append(env, e.Name+"="+h.pod.Namespace)
			case "metadata.name":
				env = append(env, e.Name+"="+h.pod.Name)
			}
		}
	}
	p, err := h.tb.StartProcess(fmt.Sprintf("upgradeguard-hold-%d", h.runs), argv, env)
	if err != nil {
		h.t.Fatal(err)
	}
	h.proc = p
}

func (h *holdContainer) logs() string {
	if h.proc == nil {
		return ""
	}
	b, _ := os.ReadFile(h.proc.LogPath)
	s := string(b)
	if len(s) > 6000 {
		s = "..." + s[len(s)-6000:]
	}
	return s
}

func TestGateHold(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "holdtest.rules.yml")
	if err := os.WriteFile(rules, []byte(holdRules), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{rules}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dyn, err := dynamic.NewForConfig(tb.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	// Three kwok nodes of one group; the exporter; the fault switch.
	for i := range 3 {
		if err := tb.CreateNode(ctx, testbed.Node{Name: fmt.Sprintf("blue-%d", i), Zone: "eu-west-1a", InstanceType: "m5.large", NodeGroup: "nodes-blue"}); err != nil {
			t.Fatal(err)
		}
	}
	startExporter(t, tb, bin, "")
	fault, stopFault, err := tb.ServeGauge("holdtest", "hold_test_fault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopFault)

	// Karpenter's NodePool CRD, two pools selected by deploy/hold's selector
	// and one that is not.
	installNodePoolCRD(ctx, t, dyn)
	pools := map[string]string{
		"general": `[{"nodes": "10%"}, {"nodes": "0", "reasons": ["Drifted"], "schedule": "0 9 * * mon-fri", "duration": "8h"}]`,
		"batch":   `[{"nodes": "2"}]`,
	}
	for name, b := range pools {
		if _, err := dyn.Resource(hold.NodePoolResource).Create(ctx, newNodePool(name, b), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	other := newNodePool("other", `[{"nodes": "5"}]`)
	other.SetLabels(nil)
	if _, err := dyn.Resource(hold.NodePoolResource).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The budgets as stored (with the CRD's defaults): what a restore must
	// give back exactly.
	original := map[string]string{}
	for _, name := range []string{"general", "batch", "other"} {
		b, _, err := poolBudgets(ctx, dyn, name)
		if err != nil {
			t.Fatal(err)
		}
		original[name] = asJSON(b)
	}

	// The fake Auto Scaling group with an instance refresh that stays
	// InProgress (its replacements take 10 minutes to launch).
	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	acct := srv.Account()
	acct.SetTiming(awsfake.Timing{LaunchDelay: 10 * time.Minute})
	acct.SetInstanceRefreshStep(200 * time.Millisecond)
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	sub, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.2.0.0/24", AZ: "eu-west-1a", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.AddASG(awsfake.ASGSpec{Name: "nodes-asg", LaunchTemplate: lt.ID, Min: 1, Max: 4, Desired: 3, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	refreshID, err := acct.StartInstanceRefresh("nodes-asg", awsfake.InstanceRefreshSpec{})
	if err != nil {
		t.Fatal(err)
	}

	// deploy/hold: its RBAC, and its Deployment (one replica, on the node
	// the fake kubelet plays), whose container the fake kubelet runs with
	// the ServiceAccount's token.
	kubelet, pod := deployHold(ctx, t, tb)
	if pod.Spec.PriorityClassName != "system-cluster-critical" {
		t.Fatalf("deploy/hold's pod has priority class %q", pod.Spec.PriorityClassName)
	}
	policy := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(policy, []byte(holdPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	const stopAfter = 45 * time.Second
	h := &holdContainer{
		t: t, tb: tb, bin: bin, pod: pod, kubeconfig: saKubeconfig(ctx, t, tb, "upgradeguard", "upgradeguard-hold"),
		addr: freeAddr(t), health: freeAddr(t),
		extra: []string{"--policy", policy, "--stop-after", stopAfter.String(),
			"--aws.instance-refresh-group", "nodes-asg", "--aws.region", "eu-west-1", "--aws.endpoint-url", srv.URL(),
			"--leader-elect.lease-duration", "6s", "--leader-elect.renew-deadline", "4s", "--leader-elect.retry-period", "1s"},
		env: []string{"AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY=" + awsfake.SecretKey, "AWS_EC2_METADATA_DISABLED=true"},
	}
	// The hold starts once the exporter's series and the fault switch are
	// in Thanos: before that its evaluations are UNKNOWN and it would pause
	// everything (as it must) before the test begins.
	err = testbed.WaitFor(ctx, 3*time.Minute, "the exporter's nodes and the fault switch in Thanos", func(ctx context.Context) (bool, error) {
		n, err := tb.QueryThanos(ctx, `upgradeguard_node_ready`, true)
		if err != nil {
			return false, err
		}
		f, err := tb.QueryThanos(ctx, `hold_test_fault`, true)
		if err != nil {
			return false, err
		}
		return len(n) == 4 && len(f) == 1, fmt.Errorf("%d node series, %d fault series", len(n), len(f))
	})
	if err != nil {
		t.Fatal(err)
	}
	podReady := runHold(ctx, t, tb, h, kubelet, pod)
	kopsValid := func(ctx context.Context) (bool, []string, error) {
		f, err := kopsPodFailures(ctx, tb)
		return err == nil && len(f) == 0, f, err
	}

	// Before any alert: GO, the pod ready, kops' validation passes, every
	// pool as it was.
	err = testbed.WaitFor(ctx, 4*time.Minute, "the hold's pod ready (GO) and kops' pod validation passing", func(ctx context.Context) (bool, error) {
		if exited, err := h.proc.Exited(); exited {
			t.Fatalf("gate hold exited: %v", err)
		}
		ok, f, err := kopsValid(ctx)
		if err != nil || !ok {
			return false, fmt.Errorf("kops validation failures %v (%v)", f, err)
		}
		return podReady(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range original {
		if b, _, err := poolBudgets(ctx, dyn, name); err != nil || asJSON(b) != want {
			t.Errorf("%s changed before any alert: %s (%v)", name, asJSON(b), err)
		}
	}

	// The alert fires.
	fault.Store(1)
	// The moment the alert fired: its activeAt in Prometheus (the rule has
	// no `for`, so it fires at the evaluation that activates it).
	var fired time.Time
	err = testbed.WaitFor(ctx, 2*time.Minute, "HoldTestFault firing", func(ctx context.Context) (bool, error) {
		at, err := firingSince(ctx, tb.PrometheusURLs[0], "HoldTestFault")
		fired = at
		return err == nil && !at.IsZero(), err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Measured from the alert firing, polled every 100 ms.
	paused := map[string]time.Duration{}
	pending := map[string]func(context.Context) (bool, error){
		"nodepool/general": func(ctx context.Context) (bool, error) {
			b, _, err := poolBudgets(ctx, dyn, "general")
			return err == nil && asJSON(b) == `[{"nodes":"0"}]`, err
		},
		"nodepool/batch": func(ctx context.Context) (bool, error) {
			b, _, err := poolBudgets(ctx, dyn, "batch")
			return err == nil && asJSON(b) == `[{"nodes":"0"}]`, err
		},
		"kops-readiness (pod not ready)": func(ctx context.Context) (bool, error) {
			ok, err := podReady(ctx)
			return !ok && err == nil, err
		},
		"kops validation failing": func(ctx context.Context) (bool, error) {
			ok, f, err := kopsValid(ctx)
			return err == nil && !ok && len(f) == 1 && strings.Contains(f[0], pod.Name) && strings.Contains(f[0], "is not ready (hold)"), err
		},
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for name, cond := range pending {
			if ok, _ := cond(ctx); ok {
				paused[name] = time.Since(fired)
				delete(pending, name)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name := range pending {
		t.Errorf("%s: not paused within 2 minutes of the alert firing", name)
	}
	for name, d := range paused {
		t.Logf("measured: alert firing -> %s: %s", name, d.Round(10*time.Millisecond))
	}
	// One interval plus one evaluation (the evaluation takes well under a
	// second here; 5 s of slack for a loaded machine).
	for _, name := range []string{"nodepool/general", "nodepool/batch"} {
		if d, ok := paused[name]; ok && d > holdInterval+5*time.Second {
			t.Errorf("%s paused %s after the alert fired, more than one interval (%s) plus one evaluation", name, d, holdInterval)
		}
	}
	if b, _, _ := poolBudgets(ctx, dyn, "other"); asJSON(b) != original["other"] {
		t.Errorf("an unselected NodePool was paused: %s", asJSON(b))
	}
	_, np, err := poolBudgets(ctx, dyn, "general")
	if err != nil {
		t.Fatal(err)
	}
	if got := np.GetAnnotations()[hold.AnnotationBudgets]; got != original["general"] {
		t.Errorf("general's annotation keeps %s, want %s", got, original["general"])
	}

	// An operator lets batch disrupt one node during the hold: theirs
	// stands.
	err = testbed.WaitFor(ctx, time.Minute, "batch's budgets changed by a person", func(ctx context.Context) (bool, error) {
		_, np, err := poolBudgets(ctx, dyn, "batch")
		if err != nil {
			return false, err
		}
		if err := unstructured.SetNestedSlice(np.Object, []any{map[string]any{"nodes": "1"}}, "spec", "disruption", "budgets"); err != nil {
			return false, err
		}
		_, err = dyn.Resource(hold.NodePoolResource).Update(ctx, np, metav1.UpdateOptions{})
		return err == nil, err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The group's upgrade is under way: a node is cordoned. Its nodes get
	// cluster-autoscaler's scale-down-disabled while the hold is on.
	cordon := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := tb.Client.CoreV1().Nodes().Patch(ctx, "blue-0", types.MergePatchType, cordon, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	scaleDownDisabled := func(ctx context.Context) (int, error) {
		l, err := tb.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: testbed.DefaultNodeGroupLabel + "=nodes-blue"})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, node := range l.Items {
			if node.Annotations[hold.AnnotationScaleDownDisabled] == "true" {
				n++
			}
		}
		return n, nil
	}
	err = testbed.WaitFor(ctx, time.Minute, "the nodes of nodes-blue annotated scale-down-disabled", func(ctx context.Context) (bool, error) {
		n, err := scaleDownDisabled(ctx)
		return n == 3, fmt.Errorf("%d of 3 annotated (%v)", n, err)
	})
	if err != nil {
		t.Error(err)
	}

	// Kill the controller mid-hold (SIGKILL: no clean-up of any kind) and
	// let the kubelet restart its container.
	leaseHolder := func(ctx context.Context) string {
		l, err := tb.Client.CoordinationV1().Leases("upgradeguard").Get(ctx, "upgradeguard-hold", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	before := leaseHolder(ctx)
	if !strings.HasPrefix(before, pod.Name+"_") {
		t.Errorf("Lease held by %q, want the pod's name and a suffix", before)
	}
	_ = syscall.Kill(-h.proc.Pid(), syscall.SIGKILL)
	<-h.proc.Done()
	kubelet.mu.Lock()
	kubelet.restart++
	kubelet.mu.Unlock()
	killed := time.Now()
	for name, want := range map[string]string{"general": `[{"nodes":"0"}]`, "batch": `[{"nodes":"1"}]`} {
		if b, _, err := poolBudgets(ctx, dyn, name); err != nil || asJSON(b) != want {
			t.Errorf("after the kill, %s has %s (%v), want %s", name, asJSON(b), err, want)
		}
	}
	h.start()
	restarted := time.Now()
	err = testbed.WaitFor(ctx, time.Minute, "the restarted controller leading", func(ctx context.Context) (bool, error) {
		now := leaseHolder(ctx)
		return now != "" && now != before, fmt.Errorf("holder %q", now)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: the restarted controller took the Lease %s after the kill", time.Since(killed).Round(100*time.Millisecond))

	// STOP: no GO for --stop-after (counted from the restart) cancels the
	// instance refresh, once.
	err = testbed.WaitFor(ctx, 2*time.Minute, "the instance refresh cancelled on STOP", func(ctx context.Context) (bool, error) {
		r := acct.InstanceRefreshes("nodes-asg")
		return len(r) > 0 && r[0].ID == refreshID && (r[0].Status == "Cancelling" || r[0].Status == "Cancelled"), fmt.Errorf("refreshes %+v", r)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: alert firing -> instance refresh cancelled: %s (--stop-after %s, counted from the controller's restart, %s before)",
		time.Since(fired).Round(100*time.Millisecond), stopAfter, time.Since(restarted).Round(100*time.Millisecond))
	if n := srv.Calls("CancelInstanceRefresh"); n != 1 {
		t.Errorf("%d CancelInstanceRefresh calls, want 1", n)
	}

	// The alert resolves: after `consecutive` passing evaluations every
	// target is restored exactly; the person's budgets stay.
	fault.Store(0)
	resolved := time.Now()
	err = testbed.WaitFor(ctx, 3*time.Minute, "general's budgets restored exactly, the pod ready and kops' validation passing", func(ctx context.Context) (bool, error) {
		b, np, err := poolBudgets(ctx, dyn, "general")
		if err != nil {
			return false, err
		}
		var got, want any
		_ = json.Unmarshal([]byte(asJSON(b)), &got)
		_ = json.Unmarshal([]byte(original["general"]), &want)
		if !reflect.DeepEqual(got, want) || len(np.GetAnnotations()) != 0 || np.GetLabels()[hold.LabelHeld] != "" {
			return false, fmt.Errorf("general: budgets %s, annotations %v, labels %v", asJSON(b), np.GetAnnotations(), np.GetLabels())
		}
		if ok, f, err := kopsValid(ctx); !ok {
			return false, fmt.Errorf("kops validation failures %v (%v)", f, err)
		}
		return podReady(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: alert resolved in the gauge -> general restored, pod ready, kops valid: %s", time.Since(resolved).Round(100*time.Millisecond))
	_, np, err = poolBudgets(ctx, dyn, "batch")
	if err != nil {
		t.Fatal(err)
	}
	if b, _, _ := poolBudgets(ctx, dyn, "batch"); asJSON(b) != `[{"nodes":"1"}]` || len(np.GetAnnotations()) != 0 {
		t.Errorf("batch after the hold: %s %v, want the person's budgets and no marks", asJSON(b), np.GetAnnotations())
	}
	err = testbed.WaitFor(ctx, time.Minute, "scale-down-disabled removed", func(ctx context.Context) (bool, error) {
		n, err := scaleDownDisabled(ctx)
		return n == 0, fmt.Errorf("%d still annotated (%v)", n, err)
	})
	if err != nil {
		t.Error(err)
	}
	if r := acct.InstanceRefreshes("nodes-asg"); len(r) != 1 {
		t.Errorf("%d instance refreshes: the hold must not start one after GO", len(r))
	}

	// The audit trail: Events on the pools, the metrics.
	evs, err := tb.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=general"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range evs.Items {
		reasons[e.Reason]++
		if e.Reason == hold.ReasonPaused && !strings.Contains(e.Message, "HoldTestFault") {
			t.Errorf("the pause Event does not give the gate's reason: %s", e.Message)
		}
	}
	if reasons[hold.ReasonPaused] != 1 || reasons[hold.ReasonResumed] != 1 {
		t.Errorf("Events on general: %v, want one %s and one %s", reasons, hold.ReasonPaused, hold.ReasonResumed)
	}
	resp, err := http.Get("http://" + h.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`upgradeguard_hold_active{target="nodepool/general"} 0`,
		`upgradeguard_hold_transitions_total{action="resume",target="nodepool/general"} 1`,
		`upgradeguard_hold_active{target="asg/nodes-asg"} 0`,
		`upgradeguard_hold_leader 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the restarted controller's /metrics lacks %s", want)
		}
	}
	if _, err := tb.Client.CoreV1().Pods("upgradeguard").Get(ctx, pod.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("the hold's pod is gone")
	}
}

const holdSelfPolicy = `consecutive: 2
interval: 3s
monitoring:
  aws_max_age: 0s
  watchdog: ""  # this testbed's Prometheus loads no bundle rules, so no UpgradeGuardWatchdog
capacity:
  ips: false
  quotas: false
nodes:
  groups: false  # the exporter runs no AWS collector: no Auto Scaling series, UNKNOWN otherwise
`

// deployHold creates deploy/hold's namespace, RBAC and Deployment (one
// replica, on the node hold-node that a fake kubelet plays), and returns
// the fake kubelet and the Deployment's pod once it is bound there; the
// caller runs the pod's container (holdContainer).
func deployHold(ctx context.Context, t *testing.T, tb *testbed.Testbed) (*fakeKubelet, *corev1.Pod) {
	t.Helper()
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "upgradeguard"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applyYAML(ctx, t, tb, filepath.Join("..", "..", "deploy", "hold", "rbac.yaml"))
	kubelet := startFakeKubelet(ctx, t, tb, "hold-node")
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "hold", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		t.Fatalf("deploy/hold/deployment.yaml: %v", err)
	}
	dep := obj.(*appsv1.Deployment)
	dep.Namespace = "upgradeguard"
	dep.Spec.Replicas = new(int32(1))
	dep.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "hold-node"}
	if _, err := tb.Client.AppsV1().Deployments("upgradeguard").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deploy/hold's Deployment: %v", err)
	}
	var pod *corev1.Pod
	err = testbed.WaitFor(ctx, 2*time.Minute, "deploy/hold's pod scheduled on hold-node", func(ctx context.Context) (bool, error) {
		l, err := tb.Client.CoreV1().Pods("upgradeguard").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=hold"})
		if err != nil {
			return false, err
		}
		for i := range l.Items {
			if l.Items[i].Spec.NodeName == "hold-node" {
				pod = &l.Items[i]
				return true, nil
			}
		}
		return false, fmt.Errorf("%d pods, none bound to hold-node", len(l.Items))
	})
	if err != nil {
		t.Fatal(err)
	}
	return kubelet, pod
}

// runHold starts gate hold's container h, with the fake kubelet probing its
// readiness on pod until the test ends (the hold's log is printed when the
// test failed), and returns whether pod is Ready.
func runHold(ctx context.Context, t *testing.T, tb *testbed.Testbed, h *holdContainer, kubelet *fakeKubelet, pod *corev1.Pod) func(context.Context) (bool, error) {
	t.Helper()
	probeCtx, stopProbe := context.WithCancel(ctx)
	h.start()
	go kubelet.probe(probeCtx, pod, "http://"+h.health)
	t.Cleanup(func() {
		stopProbe()
		if t.Failed() {
			t.Logf("gate hold's log:\n%s", h.logs())
		}
	})
	return func(ctx context.Context) (bool, error) {
		p, err := tb.Client.CoreV1().Pods("upgradeguard").Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}
}
