package preflight

import (
	"os"
	"regexp"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func gvk(apiVersion, kind string) schema.GroupVersionKind {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		panic(err)
	}
	return gv.WithKind(kind)
}

func TestAPITableFromScheme(t *testing.T) {
	table := NewAPITable()
	if table.Release.IsZero() {
		t.Fatal("the k8s.io/api release was not read from the build information")
	}
	// Entries the generated lifecycle methods give (k8s.io/api
	// policy/v1beta1 and networking/v1beta1 zz_generated.prerelease-lifecycle.go).
	lc, ok := table.Lookup(gvk("policy/v1beta1", "PodDisruptionBudget"))
	if !ok || lc.Deprecated != (Version{1, 21}) || lc.Removed != (Version{1, 25}) || lc.Replacement != gvk("policy/v1", "PodDisruptionBudget") {
		t.Errorf("policy/v1beta1 PodDisruptionBudget = %+v, %v", lc, ok)
	}
	if got, ok := table.KindOf(schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1beta1", Resource: "ingresses"}); !ok || got.Kind != "Ingress" {
		t.Errorf("networking.k8s.io/v1beta1 ingresses -> %v, %v", got, ok)
	}
	if _, ok := table.Lookup(gvk("apps/v1", "Deployment")); ok {
		t.Error("apps/v1 Deployment has a lifecycle entry")
	}
	if len(table.kinds) < 40 {
		t.Errorf("only %d kinds with a lifecycle: was the scheme iterated?", len(table.kinds))
	}
}

func TestJudge(t *testing.T) {
	table := NewAPITable()
	table.AddCRDVersion(gvk("example.com/v1beta1", "Widget"), "widgets", "example.com/v1beta1 Widget is deprecated; use example.com/v1", gvk("example.com/v1", "Widget"))
	target := Version{1, 37}
	cases := []struct {
		gvk                  schema.GroupVersionKind
		target               Version
		sev                  Severity
		removed, replacement string
	}{
		{gvk("policy/v1beta1", "PodDisruptionBudget"), target, Blocker, "1.25", "policy/v1 PodDisruptionBudget"},
		// Removed exactly at the target.
		{gvk("policy/v1beta1", "PodDisruptionBudget"), Version{1, 25}, Blocker, "1.25", "policy/v1 PodDisruptionBudget"},
		// Deprecated at the target, removed after it.
		{gvk("policy/v1beta1", "PodDisruptionBudget"), Version{1, 24}, Warning, "1.25", "policy/v1 PodDisruptionBudget"},
		{gvk("policy/v1beta1", "PodDisruptionBudget"), Version{1, 21}, Warning, "1.25", "policy/v1 PodDisruptionBudget"},
		// Not yet deprecated at the target.
		{gvk("policy/v1beta1", "PodDisruptionBudget"), Version{1, 20}, "", "1.25", "policy/v1 PodDisruptionBudget"},
		// Deprecated without a removal (core v1 Endpoints since 1.33): info,
		// no known upgrade needs it moved (a warning nobody
		// could clear made every 1.33+ preflight exit 4).
		{gvk("v1", "Endpoints"), target, Info, "", "discovery.k8s.io/v1 EndpointSlice"},
		{gvk("storagemigration.k8s.io/v1beta1", "StorageVersionMigration"), target, Warning, "1.40", "storagemigration.k8s.io/v1 StorageVersionMigration"},
		{gvk("apps/v1", "Deployment"), target, "", "", ""},
		// A built-in group's version that k8s.io/api no longer has.
		{gvk("policy/v1beta1", "PodSecurityPolicy"), target, Blocker, "1.25", ""},
		// An unknown group (a CRD the table was not told of) says nothing.
		{gvk("other.io/v1alpha1", "Thing"), target, "", "", ""},
		{gvk("example.com/v1beta1", "Widget"), target, Warning, "", "example.com/v1 Widget"},
		{gvk("example.com/v1", "Widget"), target, "", "", ""},
	}
	for _, c := range cases {
		j := table.Judge(c.gvk, c.target)
		if j.Severity != c.sev || j.Removed != c.removed || j.Replacement != c.replacement {
			t.Errorf("Judge(%s, %s) = %+v; want severity %q removed %q replacement %q", gvkString(c.gvk), c.target, j, c.sev, c.removed, c.replacement)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"1.37": {1, 37}, "v1.36": {1, 36}, "v1.35.4-eks-abc123": {1, 35}, "1.34.2": {1, 34}, "v1.33.1+k3s1": {1, 33}} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1", "latest", "1.x", "one.two"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func TestAPIReleaseMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/api v0\.(\d+)\.`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no k8s.io/api in go.mod")
	}
	if want := "1." + string(m[1]); apiRelease.String() != want {
		t.Errorf("apiRelease = %s, go.mod has k8s.io/api of %s: update apiRelease", apiRelease, want)
	}
}
