package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// prometheusOperator is the prometheus-operator module whose CRDs the
// bundle's ServiceMonitor, PodMonitor and PrometheusRule are checked
// against. go.mod has its monitoring API module at v0.95.1, but the module
// proxy reachable here refuses the main module at v0.95.x (403), so the
// newest it serves: the CRDs of v0.94.1 accept what the v0.95 types write.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.94.1"

const fieldManager = "upgradeguard-deploy-test"

// collectorNames are every collector the overlays enable.
var collectorNames = []string{"nodes", "pdb", "workloads", "cni", "awsquota"}

// TestBundleOnTestbed applies the bundle to a real kube-apiserver and runs
// the exporter under its ServiceAccount: the manifests are valid (server-side
// dry run, CRDs included), the RBAC is sufficient (every collector succeeds)
// and minimal (without any one rule, resource or verb, the exporter does not
// become ready or a collector fails).
func TestBundleOnTestbed(t *testing.T) {
	tb := testbed.ForTest(t, testbed.Options{})
	bin := testbed.BuildUpgradeguard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	bundles := map[string]bundle{}
	for _, dir := range overlays {
		bundles[dir] = build(t, dir)
	}
	dyn, err := dynamic.NewForConfig(tb.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(tb.Client.Discovery()))
	a := &applier{dyn: dyn, mapper: mapper}

	installCRDs(ctx, t, a, bundles)

	t.Run("server-side dry run", func(t *testing.T) {
		for _, dir := range overlays {
			b := bundles[dir]
			// Dry-run objects cannot land in a namespace that does not
			// exist: the Namespace is created for real first.
			for _, o := range b.ofKind("Namespace") {
				if err := a.apply(ctx, o, false); err != nil {
					t.Fatalf("%s: %v", dir, err)
				}
			}
			for _, o := range b.objs {
				if err := a.apply(ctx, o, true); err != nil {
					t.Errorf("%s: %v", dir, err)
				}
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// The identity for real: ServiceAccount, roles and bindings (the same in
	// every overlay), and a token of the ServiceAccount.
	b := bundles[overlays[0]]
	for _, o := range b.objs {
		if slices.Contains([]string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, o.GetKind()) {
			if err := a.apply(ctx, o, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	kubeconfig := serviceAccountKubeconfig(ctx, t, tb)

	// A small cluster for the collectors to see: nodes in three zones (and
	// their Leases), pods under a PDB, and the cluster's subnets in the
	// fake AWS, tagged with each overlay's cluster name.
	zones := []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}
	var nodes []string
	for i, zone := range zones {
		n := testbed.Node{Name: fmt.Sprintf("node-%d", i), Zone: zone, InstanceType: "m5.large", NodeGroup: "nodes"}
		if err := tb.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n.Name)
	}
	one := intstr.FromInt32(1)
	if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "shop", Name: "web", Replicas: 2, MaxUnavailable: &one, Service: true}); err != nil {
		t.Fatal(err)
	}
	aws, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aws.Close() })
	tags := map[string]string{}
	for _, dir := range overlays {
		p, err := parseArgs(exporterContainer(t, bundles[dir].deployment(t)).Args)
		if err != nil {
			t.Fatal(err)
		}
		tags["kubernetes.io/cluster/"+p.cfg.AWS.ClusterName] = "owned"
	}
	for i, zone := range zones {
		if _, err := aws.Account().AddSubnet(awsfake.SubnetSpec{CIDR: fmt.Sprintf("10.1.%d.0/24", i), AZ: zone, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	run := &exporterRun{tb: tb, bin: bin, kubeconfig: kubeconfig, awsURL: aws.URL()}

	t.Run("every collector succeeds under the ServiceAccount", func(t *testing.T) {
		type runCase struct {
			name, dir string
			env       []string
		}
		var runs []runCase
		for _, dir := range overlays {
			runs = append(runs, runCase{dir, dir, nil})
		}
		runs = append(runs, runCase{overlays[0] + " without streaming lists", overlays[0], withoutStreamingLists})
		for i, rc := range runs {
			args := exporterContainer(t, bundles[rc.dir].deployment(t)).Args
			p, url := run.start(t, fmt.Sprintf("exporter-%d", i), args, rc.env)
			err := testbed.WaitFor(ctx, 2*time.Minute, rc.name+": the exporter ready with every collector succeeding", func(ctx context.Context) (bool, error) {
				if exited, err := p.Exited(); exited {
					return false, fmt.Errorf("exited: %v", err)
				}
				if err := ready(ctx, url); err != nil {
					return false, err
				}
				mfs, err := scrape.Get(ctx, url+"/metrics")
				if err != nil {
					return false, err
				}
				if bad := failing(mfs); len(bad) > 0 {
					return false, fmt.Errorf("collectors not succeeding: %v", bad)
				}
				// What each informer feeds is there: Leases (heartbeats),
				// nodes, pods, PDBs, Deployments and EndpointSlices, and the
				// AWS collectors' data.
				web := map[string]string{"namespace": "shop", "service": "web", "ready": "true"}
				webReady, _ := mfs.Value("upgradeguard_service_endpoints", web)
				counts := map[string]int{
					"upgradeguard_deployment_spec_replicas":   len(mfs.Samples("upgradeguard_deployment_spec_replicas", map[string]string{"namespace": "shop", "deployment": "web"})),
					"ready endpoints of shop/web":             int(webReady),
					"upgradeguard_node_heartbeat_age_seconds": len(mfs.Samples("upgradeguard_node_heartbeat_age_seconds", nil)),
					"upgradeguard_node_ready":                 len(mfs.Samples("upgradeguard_node_ready", nil)),
					"upgradeguard_node_evictable_pods":        len(mfs.Samples("upgradeguard_node_evictable_pods", nil)),
					"upgradeguard_pdb_expected_pods":          len(mfs.Samples("upgradeguard_pdb_expected_pods", map[string]string{"namespace": "shop", "pdb": "web"})),
					"upgradeguard_node_ip_capacity":           len(mfs.Samples("upgradeguard_node_ip_capacity", nil)),
					"upgradeguard_subnet_available_ips":       len(mfs.Samples("upgradeguard_subnet_available_ips", nil)),
					"upgradeguard_aws_quota_limit":            len(mfs.Samples("upgradeguard_aws_quota_limit", nil)),
				}
				want := map[string]int{
					"upgradeguard_node_heartbeat_age_seconds": len(nodes), "upgradeguard_node_ready": len(nodes),
					"upgradeguard_node_evictable_pods": len(nodes), "upgradeguard_pdb_expected_pods": 1,
					"upgradeguard_node_ip_capacity": len(nodes), "upgradeguard_subnet_available_ips": len(zones),
					"upgradeguard_deployment_spec_replicas": 1, "ready endpoints of shop/web": 2,
				}
				for name, n := range want {
					if counts[name] != n {
						return false, fmt.Errorf("series %v, want %v (and some upgradeguard_aws_quota_limit)", counts, want)
					}
				}
				return counts["upgradeguard_aws_quota_limit"] > 0, fmt.Errorf("series %v", counts)
			})
			if err != nil {
				t.Errorf("%v\n%s", err, tail(p.LogPath, 30))
			}
			if err := p.Stop(); err != nil {
				t.Logf("stopping the exporter: %v", err)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("every rule, resource and verb is needed", func(t *testing.T) {
		roles := bundleRoles(t, b)
		args := exporterContainer(t, b.deployment(t)).Args
		for _, c := range minimalityCases(roles) {
			t.Run(c.name, func(t *testing.T) {
				setRoles(ctx, t, tb.Client, roles, c.role, c.rules)
				p, url := run.start(t, "exporter-without-"+c.slug, append(args, "--kube.sync-timeout=15s"), c.env)
				defer func() { _ = p.Stop() }()
				why, err := brokenWithin(ctx, p, url, 90*time.Second)
				if err != nil {
					t.Fatalf("without it, the exporter %v: the permission is not needed\n%s", err, tail(p.LogPath, 20))
				}
				// The failure must come from the API server's refusal, not
				// from something else going wrong.
				if log, _ := os.ReadFile(p.LogPath); !bytes.Contains(log, []byte("forbidden")) {
					t.Errorf("the exporter failed (%s) but its log names no forbidden request:\n%s", why, tail(p.LogPath, 20))
				}
				t.Logf("without it: %s", why)
			})
		}
		// Back to the bundle's roles, which the sufficiency run proved.
		setRoles(ctx, t, tb.Client, roles, "", nil)
	})
}

// applier applies objects with server-side apply.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func (a *applier) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", gvk, o.GetName(), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

// apply server-side applies o, rejecting unknown fields; with dryRun, the
// API server validates and admits it without storing it.
func (a *applier) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool) error {
	ri, err := a.resource(o)
	if err != nil {
		return err
	}
	data, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: fieldManager, Force: &force, FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts); err != nil {
		return fmt.Errorf("applying %s %s/%s (dry run %v): %w", o.GetKind(), o.GetNamespace(), o.GetName(), dryRun, err)
	}
	return nil
}

// installCRDs applies, from the prometheus-operator module's own files, the
// CRDs of every kind the bundles use that the API server does not know, and
// waits until they are served.
func installCRDs(ctx context.Context, t *testing.T, a *applier, bundles map[string]bundle) {
	t.Helper()
	need := map[schema.GroupKind]bool{}
	for _, b := range bundles {
		for _, o := range b.objs {
			if gk := o.GroupVersionKind().GroupKind(); gk.Group == "monitoring.coreos.com" {
				need[gk] = true
			}
		}
	}
	dir := moduleDir(t, prometheusOperator)
	files, err := filepath.Glob(filepath.Join(dir, "example", "prometheus-operator-crd", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s/example/prometheus-operator-crd (%v)", dir, err)
	}
	var installed []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &crd.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		if !need[schema.GroupKind{Group: group, Kind: kind}] {
			continue
		}
		delete(need, schema.GroupKind{Group: group, Kind: kind})
		if err := a.apply(ctx, crd, false); err != nil {
			t.Fatal(err)
		}
		installed = append(installed, crd)
	}
	if len(need) > 0 {
		t.Fatalf("the bundle uses %v, which %s has no CRD for", need, prometheusOperator)
	}
	for _, crd := range installed {
		err := testbed.WaitFor(ctx, time.Minute, "CRD "+crd.GetName()+" established", func(ctx context.Context) (bool, error) {
			ri, err := a.resource(crd)
			if err != nil {
				return false, err
			}
			got, err := ri.Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, errors.New("not established")
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Discovery must list the new kinds before they can be mapped.
	err = testbed.WaitFor(ctx, time.Minute, "the new kinds in discovery", func(context.Context) (bool, error) {
		a.mapper.Reset()
		for _, crd := range installed {
			group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
			if _, err := a.mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind}); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// moduleDir downloads a module through the Go module proxy (or finds it in
// the module cache) and returns its directory. It runs outside this module
// so that go.mod and go.sum stay as they are.
func moduleDir(t *testing.T, modVersion string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: %v %s (%v)", modVersion, err, info.Error, jerr)
	}
	return info.Dir
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the
// bundle's ServiceAccount with a token from the TokenRequest API, and checks
// the API server sees that identity.
func serviceAccountKubeconfig(ctx context.Context, t *testing.T, tb *testbed.Testbed) string {
	t.Helper()
	expiry := int64(3600)
	tr, err := tb.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for %s/%s: %v", namespace, serviceAccount, err)
	}
	cfg, err := clientcmd.LoadFromFile(tb.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Token = tr.Status.Token
	}
	path := filepath.Join(t.TempDir(), "exporter.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := review.Status.UserInfo.Username, saUser(); got != want {
		t.Fatalf("the token authenticates as %q, want %q", got, want)
	}
	return path
}

func saUser() string { return "system:serviceaccount:" + namespace + ":" + serviceAccount }

// exporterRun starts the exporter binary with a container's arguments,
// pointed at the testbed and the fake AWS instead of the in-cluster
// configuration and AWS.
type exporterRun struct {
	tb                      *testbed.Testbed
	bin, kubeconfig, awsURL string
}

func (r *exporterRun) start(t *testing.T, name string, containerArgs, env []string) (*testbed.Process, string) {
	t.Helper()
	addr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	healthAddr, err := testbed.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{r.bin}
	for _, a := range containerArgs {
		if !strings.HasPrefix(a, "--web.listen-address") && !strings.HasPrefix(a, "--web.health-address") {
			argv = append(argv, a)
		}
	}
	argv = append(argv, "--web.listen-address="+addr, "--web.health-address="+healthAddr,
		"--kubeconfig="+r.kubeconfig, "--aws.endpoint-url="+r.awsURL)
	p, err := r.tb.StartProcess(name, argv, append([]string{
		"AWS_ACCESS_KEY_ID=" + awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY=" + awsfake.SecretKey,
		"AWS_EC2_METADATA_DISABLED=true",
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	return p, "http://" + addr
}

func ready(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// failing lists the collectors whose upgradeguard_collector_success is not 1.
func failing(mfs scrape.Families) []string {
	var bad []string
	for _, c := range collectorNames {
		if v, ok := mfs.Value("upgradeguard_collector_success", map[string]string{"collector": c}); !ok || v != 1 {
			bad = append(bad, fmt.Sprintf("%s=%v (present %v)", c, v, ok))
		}
	}
	return bad
}

// brokenWithin watches an exporter started with a reduced role and says how
// it broke: it exited (its informers did not sync), or a collector reported
// failure once the API server had refused a request (before that, the AWS
// collectors report 0 only because their first refresh is pending). It
// returns an error when the exporter instead stays ready with every
// collector succeeding for 15 s, or when nothing is decided in time.
func brokenWithin(ctx context.Context, p *testbed.Process, url string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var healthySince time.Time
	for time.Now().Before(deadline) {
		if exited, err := p.Exited(); exited {
			return fmt.Sprintf("exited before becoming ready (%v)", err), nil
		}
		if ready(ctx, url) == nil {
			if mfs, err := scrape.Get(ctx, url+"/metrics"); err == nil {
				var zero []string
				for _, c := range collectorNames {
					if v, ok := mfs.Value("upgradeguard_collector_success", map[string]string{"collector": c}); ok && v == 0 {
						zero = append(zero, c)
					}
				}
				if log, _ := os.ReadFile(p.LogPath); len(zero) > 0 && bytes.Contains(log, []byte("forbidden")) {
					return fmt.Sprintf("became ready, then collectors %v reported success 0", zero), nil
				}
				if len(failing(mfs)) > 0 {
					healthySince = time.Time{}
				} else if healthySince.IsZero() {
					healthySince = time.Now()
				} else if time.Since(healthySince) > 15*time.Second {
					return "", errors.New("stayed ready with every collector succeeding for 15 s")
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("neither broke nor stayed healthy within %s", timeout)
}

// role is a Role or ClusterRole of the bundle.
type role struct {
	kind, namespace, name string
	rules                 []rbacv1.PolicyRule
}

func (r role) key() string { return r.kind + "/" + r.name }

func bundleRoles(t *testing.T, b bundle) []role {
	t.Helper()
	var out []role
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range b.ofKind(kind) {
			var cr rbacv1.ClusterRole // a Role has the same rules
			decode(t, o, &cr)
			out = append(out, role{kind: kind, namespace: o.GetNamespace(), name: o.GetName(), rules: cr.Rules})
		}
	}
	if len(out) == 0 {
		t.Fatal("the bundle has no roles")
	}
	return out
}

type minimalityCase struct {
	name, slug string
	role       string // role key
	rules      []rbacv1.PolicyRule
	env        []string // the exporter's environment
}

// withoutStreamingLists makes client-go list, then watch, as it does against
// API servers that do not serve streaming lists (the WatchList feature),
// instead of opening its watches with the initial state streamed. The
// testbed's API server serves them, so the list verb is only exercised,
// and proven needed, this way.
var withoutStreamingLists = []string{"KUBE_FEATURE_WatchListClient=false"}

// minimalityCases takes away, one at a time, each rule of each role, each
// resource of a rule with several, and each verb of a rule with several.
func minimalityCases(roles []role) []minimalityCase {
	var out []minimalityCase
	for _, r := range roles {
		for i, rule := range r.rules {
			without := func(change func(*rbacv1.PolicyRule) bool) []rbacv1.PolicyRule {
				var rules []rbacv1.PolicyRule
				for j, other := range r.rules {
					other = *other.DeepCopy()
					if j == i && !change(&other) {
						continue
					}
					rules = append(rules, other)
				}
				return rules
			}
			what := fmt.Sprintf("%s %s rule %d (%s)", r.kind, r.name, i, strings.Join(rule.Resources, ","))
			slug := fmt.Sprintf("%s-%d", strings.ToLower(r.kind), i)
			out = append(out, minimalityCase{name: "without " + what, slug: slug, role: r.key(),
				rules: without(func(*rbacv1.PolicyRule) bool { return false })})
			if len(rule.Resources) > 1 {
				for _, res := range rule.Resources {
					out = append(out, minimalityCase{name: fmt.Sprintf("without %s in %s", res, what), slug: slug + "-" + res, role: r.key(),
						rules: without(func(p *rbacv1.PolicyRule) bool {
							p.Resources = slices.DeleteFunc(p.Resources, func(s string) bool { return s == res })
							return true
						})})
				}
			}
			if len(rule.Verbs) > 1 {
				for _, verb := range rule.Verbs {
					c := minimalityCase{name: fmt.Sprintf("without %s in %s", verb, what), slug: slug + "-" + verb, role: r.key(),
						rules: without(func(p *rbacv1.PolicyRule) bool {
							p.Verbs = slices.DeleteFunc(p.Verbs, func(s string) bool { return s == verb })
							return true
						})}
					if verb == "list" {
						c.name += ", API server without streaming lists"
						c.env = withoutStreamingLists
					}
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// setRoles gives every role its bundle rules, except the role named changed,
// which gets rules; then waits until the API server's authorizer agrees, by
// asking it about each permission of the bundle as the ServiceAccount.
func setRoles(ctx context.Context, t *testing.T, client kubernetes.Interface, roles []role, changed string, rules []rbacv1.PolicyRule) {
	t.Helper()
	type perm struct {
		namespace, group, resource, verb string
	}
	want := map[perm]bool{}
	for _, r := range roles {
		grant := r.rules
		if r.key() == changed {
			grant = rules
		}
		for _, rule := range r.rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, v := range rule.Verbs {
						want[perm{r.namespace, g, res, v}] = false
					}
				}
			}
		}
		for _, rule := range grant {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, v := range rule.Verbs {
						want[perm{r.namespace, g, res, v}] = true
					}
				}
			}
		}
		var err error
		switch r.kind {
		case "ClusterRole":
			var cr *rbacv1.ClusterRole
			if cr, err = client.RbacV1().ClusterRoles().Get(ctx, r.name, metav1.GetOptions{}); err == nil {
				cr.Rules = grant
				_, err = client.RbacV1().ClusterRoles().Update(ctx, cr, metav1.UpdateOptions{FieldManager: fieldManager})
			}
		case "Role":
			var ro *rbacv1.Role
			if ro, err = client.RbacV1().Roles(r.namespace).Get(ctx, r.name, metav1.GetOptions{}); err == nil {
				ro.Rules = grant
				_, err = client.RbacV1().Roles(r.namespace).Update(ctx, ro, metav1.UpdateOptions{FieldManager: fieldManager})
			}
		}
		if err != nil {
			t.Fatalf("updating %s: %v", r.key(), err)
		}
	}
	err := testbed.WaitFor(ctx, 30*time.Second, "the authorizer to apply the changed role", func(ctx context.Context) (bool, error) {
		for p, allowed := range want {
			sar, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   saUser(),
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: p.namespace, Group: p.group, Resource: p.resource, Verb: p.verb,
					},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			if sar.Status.Allowed != allowed {
				return false, fmt.Errorf("%+v allowed=%v, want %v", p, sar.Status.Allowed, allowed)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
