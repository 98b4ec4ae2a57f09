package preflight

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// KnownAPI is one row of KnownAPIs (removals_generated.go, written by
// internal/genremovals from the zz_generated.prerelease-lifecycle.go files
// that k8s.io/code-generator's prerelease-lifecycle-gen writes into
// k8s.io/api, k8s.io/apiextensions-apiserver and k8s.io/kube-aggregator;
// the API server reads the same methods in
// k8s.io/apiserver/pkg/endpoints/deprecation/deprecation.go). Releases are
// Kubernetes major.minor; a zero Version is "none stated".
type KnownAPI struct {
	// Group (empty for the core group), Version and Kind name the type.
	Group, Version, Kind string
	// Introduced, Deprecated and Removed are what APILifecycleIntroduced,
	// APILifecycleDeprecated and APILifecycleRemoved return in the latest
	// module release that carried the type.
	Introduced, Deprecated, Removed Version
	// RemovedInferred marks a Removed that no module stated: the type was
	// dropped from the modules with none (alpha types, mostly), and Removed
	// is the first release whose modules no longer have it, so it was
	// removed by that release at the latest.
	RemovedInferred bool
	// Replacement is what APILifecycleReplacement returns; empty when none
	// is named.
	Replacement schema.GroupVersionKind
	// LastModule is the last release (k8s.io/api v0.N is Kubernetes 1.N)
	// whose module carried the type.
	LastModule Version
}

// GroupVersionKind returns the type's group/version/kind.
func (k KnownAPI) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
}

// mergeKnownAPIs adds the generated table to t, under the compiled-in
// scheme's data: every row's group and kind become known (so a version of
// one of their groups that no release from knownAPIsFirst on had is told
// apart from a custom resource's), and each row with a deprecation or a
// removal whose kind the scheme does not know is judged by it, its List
// kind with it (upstream gives a List the lifecycle of its item), and its
// resource name (apimachinery's UnsafeGuessKindToResource, as the API
// server names built-in resources in its metrics) is mapped to it.
func (t *APITable) mergeKnownAPIs(rows []KnownAPI, inScheme func(schema.GroupVersionKind) bool) {
	for _, r := range rows {
		gvk := r.GroupVersionKind()
		list := gvk.GroupVersion().WithKind(gvk.Kind + "List")
		t.groups[gvk.Group] = true
		if _, judged := t.kinds[gvk]; inScheme(gvk) && (judged || (r.Deprecated.IsZero() && r.Removed.IsZero())) {
			// The compiled-in scheme is at least as new; but a kind it
			// carries with no lifecycle methods whose doc comment states
			// one (rbac.authorization.k8s.io/v1alpha1) takes the row's.
			continue
		}
		t.known[gvk] = true
		t.known[list] = true // upstream gives a List its item's lifecycle
		if !r.Introduced.IsZero() {
			t.introduced[gvk], t.introduced[list] = r.Introduced, r.Introduced
		}
		if r.Deprecated.IsZero() && r.Removed.IsZero() {
			continue
		}
		lc := Lifecycle{Deprecated: r.Deprecated, Removed: r.Removed, RemovedInferred: r.RemovedInferred, Replacement: r.Replacement}
		t.kinds[gvk] = lc
		t.kinds[list] = lc
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		if _, taken := t.resources[plural]; !taken {
			t.resources[plural] = gvk
		}
	}
}

// judgeUnknown rules on a kind the table has no lifecycle of. The rule kept:
// a kind of a built-in group (a group client-go's scheme or KnownAPIs has)
// in a version neither of them has was, as far as the upstream modules
// tell, served by no release from knownAPIsFirst to the table's own: a
// blocker for any target up to the table's release, and a warning for a
// later target (a later release may have added the version). Types that
// upstream dropped before 1.19 without ever having a lifecycle file fall
// here too. Anything else (a kind of a group no module has, such as a
// custom resource the table was not told of, or a current built-in kind
// without a lifecycle) says nothing.
func (t *APITable) judgeUnknown(gvk schema.GroupVersionKind, target Version) Judgement {
	if !t.groups[gvk.Group] || t.known[gvk] {
		return Judgement{}
	}
	last := t.Release
	if last.Less(knownAPIsLast) {
		last = knownAPIsLast
	}
	name := gvkString(gvk)
	if last.Less(target) {
		return Judgement{Severity: Warning, Message: fmt.Sprintf("%s is not known to this build's API table (Kubernetes %s to %s): not served by those releases; whether %s serves it is not known", name, knownAPIsFirst, last, target)}
	}
	return Judgement{Severity: Blocker, Message: fmt.Sprintf("%s is not served by Kubernetes %s (no release from %s to %s has it: removed earlier, or never a version of its group)", name, target, knownAPIsFirst, last)}
}
