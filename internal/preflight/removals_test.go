package preflight

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// guideRemovals is every removal listed in the Kubernetes Deprecated API
// Migration Guide (https://kubernetes.io/docs/reference/using-api/deprecation-guide/,
// sections v1.32, v1.29, v1.27, v1.26, v1.25, v1.22 and v1.16), kind by
// kind, with the release that stops serving it.
var guideRemovals = []struct {
	apiVersion string
	kinds      []string
	removed    Version
}{
	// v1.32
	{"flowcontrol.apiserver.k8s.io/v1beta3", []string{"FlowSchema", "PriorityLevelConfiguration"}, Version{1, 32}},
	// v1.29
	{"flowcontrol.apiserver.k8s.io/v1beta2", []string{"FlowSchema", "PriorityLevelConfiguration"}, Version{1, 29}},
	// v1.27
	{"storage.k8s.io/v1beta1", []string{"CSIStorageCapacity"}, Version{1, 27}},
	// v1.26
	{"flowcontrol.apiserver.k8s.io/v1beta1", []string{"FlowSchema", "PriorityLevelConfiguration"}, Version{1, 26}},
	{"autoscaling/v2beta2", []string{"HorizontalPodAutoscaler"}, Version{1, 26}},
	// v1.25
	{"batch/v1beta1", []string{"CronJob"}, Version{1, 25}},
	{"discovery.k8s.io/v1beta1", []string{"EndpointSlice"}, Version{1, 25}},
	{"events.k8s.io/v1beta1", []string{"Event"}, Version{1, 25}},
	{"autoscaling/v2beta1", []string{"HorizontalPodAutoscaler"}, Version{1, 25}},
	{"policy/v1beta1", []string{"PodDisruptionBudget", "PodSecurityPolicy"}, Version{1, 25}},
	{"node.k8s.io/v1beta1", []string{"RuntimeClass"}, Version{1, 25}},
	// v1.22
	{"admissionregistration.k8s.io/v1beta1", []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}, Version{1, 22}},
	{"apiextensions.k8s.io/v1beta1", []string{"CustomResourceDefinition"}, Version{1, 22}},
	{"apiregistration.k8s.io/v1beta1", []string{"APIService"}, Version{1, 22}},
	{"authentication.k8s.io/v1beta1", []string{"TokenReview"}, Version{1, 22}},
	{"authorization.k8s.io/v1beta1", []string{"LocalSubjectAccessReview", "SelfSubjectAccessReview", "SubjectAccessReview", "SelfSubjectRulesReview"}, Version{1, 22}},
	{"certificates.k8s.io/v1beta1", []string{"CertificateSigningRequest"}, Version{1, 22}},
	{"coordination.k8s.io/v1beta1", []string{"Lease"}, Version{1, 22}},
	{"extensions/v1beta1", []string{"Ingress"}, Version{1, 22}},
	{"networking.k8s.io/v1beta1", []string{"Ingress", "IngressClass"}, Version{1, 22}},
	{"rbac.authorization.k8s.io/v1beta1", []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, Version{1, 22}},
	{"scheduling.k8s.io/v1beta1", []string{"PriorityClass"}, Version{1, 22}},
	{"storage.k8s.io/v1beta1", []string{"CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"}, Version{1, 22}},
	// v1.16
	{"extensions/v1beta1", []string{"NetworkPolicy", "DaemonSet", "Deployment", "ReplicaSet", "PodSecurityPolicy"}, Version{1, 16}},
	{"apps/v1beta2", []string{"DaemonSet", "Deployment", "StatefulSet", "ReplicaSet"}, Version{1, 16}},
	{"apps/v1beta1", []string{"Deployment", "StatefulSet", "ReplicaSet"}, Version{1, 16}},
}

// neverInModules are kinds the guide lists that no k8s.io/api release from
// 1.19 on has (apps/v1beta1 had no ReplicaSet type): the table cannot give
// their removal release, and they are judged by the rule for unknown
// versions of built-in groups instead.
var neverInModules = map[schema.GroupVersionKind]bool{
	gvk("apps/v1beta1", "ReplicaSet"): true,
}

func TestDeprecationGuideRemovals(t *testing.T) {
	table := NewAPITable()
	for _, g := range guideRemovals {
		for _, kind := range g.kinds {
			k := gvk(g.apiVersion, kind)
			name := gvkString(k)
			if j := table.Judge(k, g.removed); j.Severity != Blocker {
				t.Errorf("%s at %s: %+v, want a blocker", name, g.removed, j)
			}
			if neverInModules[k] {
				if _, ok := table.Lookup(k); ok {
					t.Errorf("%s is in the table now: drop it from neverInModules", name)
				}
				continue
			}
			lc, ok := table.Lookup(k)
			if !ok {
				t.Errorf("%s: missing from the API table (the guide removes it in %s)", name, g.removed)
				continue
			}
			if lc.Removed != g.removed {
				t.Errorf("%s: removed in %s, the guide says %s", name, lc.Removed, g.removed)
			}
			before := Version{g.removed.Major, g.removed.Minor - 1}
			if j := table.Judge(k, before); j.Severity == Blocker {
				t.Errorf("%s at %s, before its removal: %+v", name, before, j)
			}
			plural := schema.GroupVersionResource{Group: k.Group, Version: k.Version}
			if got, ok := table.KindOf(plural.GroupVersion().WithResource(resourceName(k))); !ok || got != k {
				t.Errorf("%s: KindOf(%s) = %v, %v", name, resourceName(k), got, ok)
			}
		}
	}
}

// resourceName is the plural the API server's metrics label the kind with.
func resourceName(k schema.GroupVersionKind) string {
	return map[string]string{
		"CustomResourceDefinition": "customresourcedefinitions", "APIService": "apiservices",
		"PodSecurityPolicy": "podsecuritypolicies", "Ingress": "ingresses", "IngressClass": "ingressclasses",
		"PriorityClass": "priorityclasses", "StorageClass": "storageclasses", "NetworkPolicy": "networkpolicies",
		"FlowSchema": "flowschemas", "PriorityLevelConfiguration": "prioritylevelconfigurations",
		"CSIStorageCapacity": "csistoragecapacities", "HorizontalPodAutoscaler": "horizontalpodautoscalers",
		"CronJob": "cronjobs", "EndpointSlice": "endpointslices", "Event": "events",
		"PodDisruptionBudget": "poddisruptionbudgets", "RuntimeClass": "runtimeclasses",
		"MutatingWebhookConfiguration": "mutatingwebhookconfigurations", "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
		"TokenReview": "tokenreviews", "LocalSubjectAccessReview": "localsubjectaccessreviews",
		"SelfSubjectAccessReview": "selfsubjectaccessreviews", "SubjectAccessReview": "subjectaccessreviews",
		"SelfSubjectRulesReview": "selfsubjectrulesreviews", "CertificateSigningRequest": "certificatesigningrequests",
		"Lease": "leases", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
		"Role": "roles", "RoleBinding": "rolebindings", "CSIDriver": "csidrivers", "CSINode": "csinodes",
		"VolumeAttachment": "volumeattachments", "DaemonSet": "daemonsets", "Deployment": "deployments",
		"ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
	}[k.Kind]
}

func TestKnownAPIsInTable(t *testing.T) {
	table := NewAPITable()
	for _, c := range []struct {
		gvk                   schema.GroupVersionKind
		deprecated, removed   Version
		replacement, resource string
	}{
		{gvk("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"), Version{1, 16}, Version{1, 22}, "apiextensions.k8s.io/v1 CustomResourceDefinition", "customresourcedefinitions"},
		{gvk("apiregistration.k8s.io/v1beta1", "APIService"), Version{1, 19}, Version{1, 22}, "apiregistration.k8s.io/v1 APIService", "apiservices"},
		{gvk("policy/v1beta1", "PodSecurityPolicy"), Version{1, 21}, Version{1, 25}, "", "podsecuritypolicies"},
	} {
		lc, ok := table.Lookup(c.gvk)
		if !ok || lc.Deprecated != c.deprecated || lc.Removed != c.removed {
			t.Errorf("%s: %+v, %v", gvkString(c.gvk), lc, ok)
		}
		if c.replacement != "" && gvkString(lc.Replacement) != c.replacement {
			t.Errorf("%s: replacement %v", gvkString(c.gvk), lc.Replacement)
		}
		if got, ok := table.KindOf(c.gvk.GroupVersion().WithResource(c.resource)); !ok || got != c.gvk {
			t.Errorf("KindOf %s: %v, %v", c.resource, got, ok)
		}
		// The List kind is judged as its item.
		if l, ok := table.Lookup(c.gvk.GroupVersion().WithKind(c.gvk.Kind + "List")); !ok || l != lc {
			t.Errorf("%sList: %+v, %v", gvkString(c.gvk), l, ok)
		}
	}
	// Current versions of the groups client-go's scheme lacks are known and
	// clean.
	for _, k := range []schema.GroupVersionKind{gvk("apiextensions.k8s.io/v1", "CustomResourceDefinition"), gvk("apiregistration.k8s.io/v1", "APIService")} {
		if j := table.Judge(k, Version{1, 37}); j.Severity != "" {
			t.Errorf("%s: %+v", gvkString(k), j)
		}
	}
	// The rule for a version of a built-in group that no release had.
	for _, c := range []struct {
		gvk    schema.GroupVersionKind
		target Version
		sev    Severity
	}{
		{gvk("apiextensions.k8s.io/v1beta2", "CustomResourceDefinition"), Version{1, 21}, Blocker},
		{gvk("policy/v1beta2", "PodDisruptionBudget"), Version{1, 37}, Blocker},
		{gvk("apps/v1beta1", "ReplicaSet"), Version{1, 19}, Blocker},
		// After the table's release a new version may exist.
		{gvk("policy/v1beta2", "PodDisruptionBudget"), Version{1, 38}, Warning},
		// Groups no module has (custom resources) say nothing.
		{gvk("example.com/v1beta2", "Widget"), Version{1, 30}, ""},
	} {
		if j := table.Judge(c.gvk, c.target); j.Severity != c.sev {
			t.Errorf("Judge(%s, %s) = %+v, want %q", gvkString(c.gvk), c.target, j, c.sev)
		}
	}
	if len(KnownAPIs) < 150 {
		t.Errorf("only %d generated rows", len(KnownAPIs))
	}
}

// newerCRD stands in for a compiled-in type whose lifecycle differs from
// the generated table's.
type newerCRD struct{ metav1.TypeMeta }

func (c *newerCRD) DeepCopyObject() runtime.Object           { n := *c; return &n }
func (*newerCRD) APILifecycleDeprecated() (major, minor int) { return 1, 30 }
func (*newerCRD) APILifecycleRemoved() (major, minor int)    { return 1, 33 }

func TestSchemeWinsOverKnownAPIs(t *testing.T) {
	s := runtime.NewScheme()
	k := gvk("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition")
	s.AddKnownTypeWithName(k, &newerCRD{})
	table := newAPITable(s)
	if lc, ok := table.Lookup(k); !ok || lc.Removed != (Version{1, 33}) || lc.Deprecated != (Version{1, 30}) {
		t.Errorf("scheme's lifecycle lost: %+v, %v", lc, ok)
	}
	// Kinds the scheme lacks still come from the generated table.
	if lc, ok := table.Lookup(gvk("apiregistration.k8s.io/v1beta1", "APIService")); !ok || lc.Removed != (Version{1, 22}) {
		t.Errorf("APIService: %+v, %v", lc, ok)
	}
}

// TestRemovalsGeneratedIsCurrent runs the generator's -check: it fails when
// removals_generated.go is not what the generator writes from the modules
// now (it downloads them into the module cache when missing).
func TestRemovalsGeneratedIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads modules")
	}
	cmd := exec.Command("go", "run", "./internal/genremovals", "-check", "-out", "removals_generated.go", "-gomod", "../../go.mod")
	cmd.Stderr = os.Stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("removals_generated.go is stale or the generator failed (run make generate): %v\n%s", err, out)
	}
}

// TestInferredRemovals covers the kinds of API packages that never had a
// prerelease lifecycle file (read from their register.go) and were dropped:
// removed, by inference, in the first release whose modules lack them.
func TestInferredRemovals(t *testing.T) {
	table := NewAPITable()
	for _, c := range []struct {
		gvk     schema.GroupVersionKind
		removed Version
	}{
		{gvk("settings.k8s.io/v1alpha1", "PodPreset"), Version{1, 20}},
		{gvk("batch/v2alpha1", "CronJob"), Version{1, 21}},
		{gvk("discovery.k8s.io/v1alpha1", "EndpointSlice"), Version{1, 21}},
		{gvk("v1", "EphemeralContainers"), Version{1, 22}},
	} {
		name := gvkString(c.gvk)
		lc, ok := table.Lookup(c.gvk)
		if !ok || lc.Removed != c.removed || !lc.RemovedInferred {
			t.Errorf("%s: %+v, %v; want removed in %s, inferred", name, lc, ok, c.removed)
			continue
		}
		before := Version{c.removed.Major, c.removed.Minor - 1}
		if j := table.Judge(c.gvk, before); j.Severity == Blocker {
			t.Errorf("%s at %s, before its removal: %+v", name, before, j)
		}
		for _, target := range []Version{c.removed, {1, 37}, {1, 40}} {
			j := table.Judge(c.gvk, target)
			if j.Severity != Blocker || j.Removed != c.removed.String() {
				t.Errorf("%s at %s: %+v, want a blocker", name, target, j)
			}
			want := name + " is removed in " + c.removed.String() + " at the latest (the first release whose k8s.io/api"
			if !strings.HasPrefix(j.Message, want) || !strings.Contains(j.Message, "no removal was announced") || !strings.HasSuffix(j.Message, "target "+target.String()+")") {
				t.Errorf("%s at %s: message %q", name, target, j.Message)
			}
		}
		// The List kind is judged as its item.
		if j := table.Judge(c.gvk.GroupVersion().WithKind(c.gvk.Kind+"List"), c.removed); j.Severity != Blocker {
			t.Errorf("%sList at %s: %+v", name, c.removed, j)
		}
	}
	// An announced removal keeps its wording.
	if j := table.Judge(gvk("policy/v1beta1", "PodDisruptionBudget"), Version{1, 25}); j.Message != "policy/v1beta1 PodDisruptionBudget is removed in 1.25 (target 1.25)" {
		t.Errorf("announced removal: %q", j.Message)
	}
	// Kinds registered without lifecycle data that go.mod's release still
	// has are known and never judged; no row without a removal is
	// RemovedInferred, and a kind go.mod's release has is never removed.
	for _, k := range []schema.GroupVersionKind{
		gvk("apps/v1", "Deployment"), gvk("scheduling.k8s.io/v1alpha3", "Workload"),
		gvk("imagepolicy.k8s.io/v1alpha1", "ImageReview"),
		gvk("internal.apiserver.k8s.io/v1alpha1", "StorageVersion"),
	} {
		for _, target := range []Version{{1, 20}, {1, 37}} {
			if j := table.Judge(k, target); j.Severity != "" {
				t.Errorf("%s at %s: %+v", gvkString(k), target, j)
			}
		}
	}
	for _, r := range KnownAPIs {
		if r.RemovedInferred && (r.Removed.IsZero() || r.LastModule != (Version{1, r.Removed.Minor - 1})) {
			t.Errorf("%s: inferred removal %s after last module %s", gvkString(r.GroupVersionKind()), r.Removed, r.LastModule)
		}
		if r.LastModule == knownAPIsLast && r.RemovedInferred {
			t.Errorf("%s: in %s's modules, yet inferred removed", gvkString(r.GroupVersionKind()), knownAPIsLast)
		}
		if strings.HasSuffix(r.Kind, "List") {
			t.Errorf("%s: a List row", gvkString(r.GroupVersionKind()))
		}
	}
}

func TestInferredRemovalManifests(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"preset.yaml": "apiVersion: settings.k8s.io/v1alpha1\nkind: PodPreset\nmetadata: {name: env, namespace: shop}\n",
		"cron.yaml":   "apiVersion: batch/v2alpha1\nkind: CronJob\nmetadata: {name: nightly, namespace: shop}\n",
		"deploy.yaml": currentDeployment,
	})
	files, err := ManifestFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	table := NewAPITable()
	for _, c := range []struct {
		target                Version
		preset, cron, removed string
	}{
		{Version{1, 19}, "", "", ""},
		{Version{1, 20}, "settings.k8s.io/v1alpha1 PodPreset", "", "1.20"},
		{Version{1, 21}, "settings.k8s.io/v1alpha1 PodPreset", "batch/v2alpha1 CronJob", ""},
		{Version{1, 37}, "settings.k8s.io/v1alpha1 PodPreset", "batch/v2alpha1 CronJob", ""},
	} {
		var blockers []string
		for _, f := range CheckManifests(files, table, c.target) {
			if strings.Contains(f.Object, "Deployment") || strings.Contains(f.Message, "apps/v1 Deployment") {
				t.Errorf("at %s: apps/v1 Deployment gives %+v", c.target, f)
			}
			if f.Severity != Blocker {
				continue
			}
			blockers = append(blockers, f.Message)
			if !strings.Contains(f.Message, "at the latest") || !strings.Contains(f.text(), "removed in "+f.RemovedRelease+" at the latest") || strings.Contains(f.text(), "; removed in") {
				t.Errorf("at %s: %q (table text %q)", c.target, f.Message, f.text())
			}
		}
		var want []string
		for _, w := range []string{c.preset, c.cron} {
			if w != "" {
				want = append(want, w)
			}
		}
		if len(blockers) != len(want) {
			t.Errorf("at %s: blockers %q, want %q", c.target, blockers, want)
			continue
		}
		for _, w := range want {
			found := false
			for _, b := range blockers {
				found = found || strings.HasPrefix(b, w+" is removed in ")
			}
			if !found {
				t.Errorf("at %s: no blocker for %s in %q", c.target, w, blockers)
			}
		}
	}
}

func TestJudgeUsageInferredRemoval(t *testing.T) {
	table := NewAPITable()
	for _, c := range []struct {
		u    usage
		want string
	}{
		// Inferred from the modules: said so.
		{usage{gvr: schema.GroupVersionResource{Group: "settings.k8s.io", Version: "v1alpha1", Resource: "podpresets"}, requests: 2},
			"still requested, removed in 1.20 at the latest (the first release whose k8s.io/api"},
		// Announced (by the table or by the API server): unchanged.
		{usage{gvr: schema.GroupVersionResource{Group: "policy", Version: "v1beta1", Resource: "poddisruptionbudgets"}, requests: 2},
			"still requested, removed in 1.25 (target 1.30)"},
		{usage{gvr: schema.GroupVersionResource{Group: "settings.k8s.io", Version: "v1alpha1", Resource: "podpresets"}, requests: 2, deprecated: true, removedRelease: "1.20"},
			"still requested, removed in 1.20 (target 1.30)"},
	} {
		f, ok := judgeUsage(&c.u, table, Version{1, 30}, time.Hour)
		if !ok || f.Severity != Blocker || !strings.HasPrefix(f.Message, c.want) || strings.Contains(f.text(), "; removed in") {
			t.Errorf("%s: %v %+v (text %q), want %q...", c.u.gvr, ok, f, f.text(), c.want)
		}
	}
}

// TestDocumentedRemoval: rbac.authorization.k8s.io/v1alpha1 has no lifecycle
// file and k8s.io/api still carries it, but its types' doc comments say
// "Deprecated in v1.17 ... will no longer be served in v1.22", and the API
// server stopped serving it then: a ClusterRole of that version was clean
// at every target.
func TestDocumentedRemoval(t *testing.T) {
	table := NewAPITable()
	for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "RoleList"} {
		j := table.Judge(gvk("rbac.authorization.k8s.io/v1alpha1", k), Version{1, 22})
		if j.Severity != Blocker || j.Removed != "1.22" {
			t.Errorf("%s at 1.22: %+v", k, j)
		}
	}
	j := table.Judge(gvk("rbac.authorization.k8s.io/v1alpha1", "ClusterRole"), Version{1, 21})
	if j.Severity != Warning || j.Replacement != "rbac.authorization.k8s.io/v1 ClusterRole" {
		t.Errorf("ClusterRole at 1.21: %+v", j)
	}
}

// TestCurrentListKindsOutsideTheScheme: List kinds of current kinds that
// client-go's scheme does not hold were "not served" blockers at every
// target up to 1.37.
func TestCurrentListKindsOutsideTheScheme(t *testing.T) {
	table := NewAPITable()
	for _, k := range []schema.GroupVersionKind{
		gvk("apiextensions.k8s.io/v1", "CustomResourceDefinitionList"),
		gvk("apiregistration.k8s.io/v1", "APIServiceList"),
	} {
		for _, target := range []Version{{1, 21}, {1, 30}, {1, 37}, {1, 38}} {
			if j := table.Judge(k, target); j.Severity != "" {
				t.Errorf("%s at %s: %+v", gvkString(k), target, j)
			}
		}
	}
}

// TestNotYetServed: a kind first served after the target fails to apply
// there ("no matches for kind"); its APILifecycleIntroduced was read and
// never judged.
func TestNotYetServed(t *testing.T) {
	table := NewAPITable()
	for _, c := range []struct {
		gvk    schema.GroupVersionKind
		target Version
	}{
		{gvk("autoscaling/v2", "HorizontalPodAutoscaler"), Version{1, 22}},
		{gvk("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"), Version{1, 25}},
		{gvk("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"), Version{1, 25}},
		{gvk("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyList"), Version{1, 25}},
	} {
		if j := table.Judge(c.gvk, c.target); j.Severity != Blocker || !strings.Contains(j.Message, "no matches for kind") {
			t.Errorf("%s at %s: %+v", gvkString(c.gvk), c.target, j)
		}
	}
	if j := table.Judge(gvk("autoscaling/v2", "HorizontalPodAutoscaler"), Version{1, 23}); j.Severity != "" {
		t.Errorf("autoscaling/v2 at 1.23 (introduced): %+v", j)
	}
}
