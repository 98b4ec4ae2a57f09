package preflight

import (
	"fmt"
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
)

// The interfaces that k8s.io/api's zz_generated.prerelease-lifecycle.go
// files implement, as k8s.io/apiserver/pkg/endpoints/deprecation/deprecation.go
// reads them.
type (
	apiLifecycleIntroduced  interface{ APILifecycleIntroduced() (major, minor int) }
	apiLifecycleDeprecated  interface{ APILifecycleDeprecated() (major, minor int) }
	apiLifecycleRemoved     interface{ APILifecycleRemoved() (major, minor int) }
	apiLifecycleReplacement interface {
		APILifecycleReplacement() schema.GroupVersionKind
	}
)

// Lifecycle is what is known of one API version of a kind.
type Lifecycle struct {
	// Deprecated and Removed are the releases that deprecate and stop
	// serving it; zero when none is announced.
	Deprecated, Removed Version
	// RemovedInferred marks a Removed that no release announced: the first
	// release whose published API types no longer have the kind
	// (KnownAPI.RemovedInferred), so it is removed by then at the latest.
	RemovedInferred bool
	// Replacement is the kind to use instead; empty when none is named.
	Replacement schema.GroupVersionKind
	// CRD marks a custom resource version its CRD marks deprecated.
	CRD bool
	// Warning is a CRD version's own deprecationWarning.
	Warning string
}

// APITable judges API versions: the built-in ones from the lifecycle methods
// of the k8s.io/api types registered in client-go's scheme (the same
// generated data the API server uses for its deprecation warnings and
// apiserver_requested_deprecated_apis) and, for kinds the scheme lacks
// (apiextensions.k8s.io, apiregistration.k8s.io, types k8s.io/api has
// dropped), from KnownAPIs, the same data read from every release since
// 1.19; plus the deprecated versions of the cluster's CRDs when
// AddCRDVersion is given them.
type APITable struct {
	kinds map[schema.GroupVersionKind]Lifecycle
	// resources maps a group/version/resource (as the API server's metrics
	// label it) to its kind.
	resources map[schema.GroupVersionResource]schema.GroupVersionKind
	// groups are the API groups the scheme or KnownAPIs knows: a kind of
	// such a group in a version neither has is not served (judgeUnknown).
	groups map[string]bool
	// known are every kind of the scheme and of KnownAPIs.
	known map[schema.GroupVersionKind]bool
	// introduced is the first release serving a built-in kind (its List
	// kind too), where the lifecycle data states one.
	introduced map[schema.GroupVersionKind]Version
	// Release is the Kubernetes release of the k8s.io/api module compiled
	// in (its v0.N.P is Kubernetes 1.N).
	Release Version
}

// NewAPITable builds the table from the scheme at run time (every
// registered type implementing any of the lifecycle methods) and merges
// KnownAPIs under it.
func NewAPITable() *APITable {
	return newAPITable(scheme.Scheme)
}

func newAPITable(s *runtime.Scheme) *APITable {
	t := &APITable{
		kinds:      map[schema.GroupVersionKind]Lifecycle{},
		resources:  map[schema.GroupVersionResource]schema.GroupVersionKind{},
		groups:     map[string]bool{},
		known:      map[schema.GroupVersionKind]bool{},
		introduced: map[schema.GroupVersionKind]Version{},
		Release:    apiModuleRelease(),
	}
	for gvk := range s.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || gvk.Kind == "WatchEvent" || strings.HasSuffix(gvk.Kind, "Options") {
			continue
		}
		t.groups[gvk.Group] = true
		t.known[gvk] = true
		obj, err := s.New(gvk)
		if err != nil {
			continue
		}
		if in, ok := obj.(apiLifecycleIntroduced); ok {
			if major, minor := in.APILifecycleIntroduced(); major != 0 || minor != 0 {
				t.introduced[gvk] = Version{major, minor}
			}
		}
		var lc Lifecycle
		var has bool
		if d, ok := obj.(apiLifecycleDeprecated); ok {
			major, minor := d.APILifecycleDeprecated()
			lc.Deprecated, has = Version{major, minor}, has || major != 0 || minor != 0
		}
		if r, ok := obj.(apiLifecycleRemoved); ok {
			major, minor := r.APILifecycleRemoved()
			lc.Removed, has = Version{major, minor}, has || major != 0 || minor != 0
		}
		if r, ok := obj.(apiLifecycleReplacement); ok {
			lc.Replacement = r.APILifecycleReplacement()
		}
		if !has {
			continue
		}
		t.kinds[gvk] = lc
		if !strings.HasSuffix(gvk.Kind, "List") {
			// The resource name as the API server derives it for built-in
			// kinds (apimachinery's UnsafeGuessKindToResource).
			plural, _ := meta.UnsafeGuessKindToResource(gvk)
			t.resources[plural] = gvk
		}
	}
	t.mergeKnownAPIs(KnownAPIs, s.Recognizes)
	return t
}

// apiRelease is the Kubernetes release of the k8s.io/api module in go.mod
// (v0.37.x is 1.37); TestAPIReleaseMatchesGoMod keeps them together. Test
// binaries carry no module versions in their build information, so it is
// not read from there.
var apiRelease = Version{1, 37}

// apiModuleRelease returns the release of the compiled-in k8s.io/api.
func apiModuleRelease() Version {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/api" {
				if v, err := ParseVersion(strings.TrimPrefix(d.Version, "v0.")); err == nil {
					return Version{1, v.Major}
				}
			}
		}
	}
	return apiRelease
}

// AddCRDVersion records a CRD version its CRD marks deprecated, with the
// CRD's deprecationWarning (may be empty) and the kind's replacement (the
// CRD's storage version when it is served and not deprecated; else zero).
func (t *APITable) AddCRDVersion(gvk schema.GroupVersionKind, plural, warning string, replacement schema.GroupVersionKind) {
	t.kinds[gvk] = Lifecycle{CRD: true, Warning: warning, Replacement: replacement}
	t.resources[gvk.GroupVersion().WithResource(plural)] = gvk
}

// Lookup returns what is known of a kind's API version.
func (t *APITable) Lookup(gvk schema.GroupVersionKind) (Lifecycle, bool) {
	lc, ok := t.kinds[gvk]
	return lc, ok
}

// KindOf returns the kind of a group/version/resource with a lifecycle.
func (t *APITable) KindOf(gvr schema.GroupVersionResource) (schema.GroupVersionKind, bool) {
	gvk, ok := t.resources[gvr]
	return gvk, ok
}

// Judgement is the verdict on one API version at a target release.
type Judgement struct {
	Severity    Severity // "" when there is nothing to say
	Message     string
	Removed     string // "1.25"; empty when none is announced
	Replacement string // "policy/v1 PodDisruptionBudget"; empty when none
}

// Judge rules on gvk at target, following deprecation.go's IsDeprecated and
// RemovedRelease: removed at or before the target is a blocker; deprecated
// at or before it with a removal announced (or a deprecated CRD version,
// which its add-on may drop in any release of its own) is a warning;
// deprecated with no removal announced is info, since no upgrade that is
// known needs it moved. A kind the table has no lifecycle of: a version of
// a built-in group (one client-go's scheme or KnownAPIs has) that neither
// has, so that no release from 1.19 to the table's served it, is a blocker
// for targets up to the table's release and a warning after it (a later
// release may add it); anything else (a custom resource the table was not
// told of, a current kind) says nothing. Before all that, a built-in kind
// first served after the target (its APILifecycleIntroduced) is a blocker:
// the target's API server answers "no matches for kind".
func (t *APITable) Judge(gvk schema.GroupVersionKind, target Version) Judgement {
	name := gvkString(gvk)
	if in, ok := t.introduced[gvk]; ok && target.Less(in) {
		return Judgement{Severity: Blocker, Message: fmt.Sprintf("%s is served from Kubernetes %s on, not by the target %s: the API server answers \"no matches for kind\"", name, in, target)}
	}
	lc, ok := t.kinds[gvk]
	if !ok {
		return t.judgeUnknown(gvk, target)
	}
	j := Judgement{}
	if !lc.Replacement.Empty() {
		j.Replacement = gvkString(lc.Replacement)
	}
	if !lc.Removed.IsZero() {
		j.Removed = lc.Removed.String()
	}
	switch {
	case lc.CRD:
		j.Severity = Warning
		j.Message = fmt.Sprintf("%s is a deprecated version of a custom resource", name)
		if lc.Warning != "" {
			j.Message += ": " + lc.Warning
		}
	case !lc.Removed.IsZero() && !target.Less(lc.Removed):
		j.Severity = Blocker
		j.Message = fmt.Sprintf("%s is removed in %s (target %s)", name, lc.Removed, target)
		if lc.RemovedInferred {
			j.Message = fmt.Sprintf("%s is removed in %s at the latest (%s; target %s)", name, lc.Removed, inferredRemoval, target)
		}
	case !lc.Deprecated.IsZero() && !target.Less(lc.Deprecated):
		j.Severity = Warning
		j.Message = fmt.Sprintf("%s is deprecated since %s", name, lc.Deprecated)
		if j.Removed == "" {
			// Nothing to do before this upgrade, nor any later one that
			// is known: a removal is announced releases ahead
			// (https://kubernetes.io/docs/reference/using-api/deprecation-policy/).
			j.Severity = Info
			j.Message += ", no removal announced"
		}
	}
	return j
}

// inferredRemoval says where a RemovedInferred release comes from.
const inferredRemoval = "the first release whose k8s.io/api (or apiextensions-apiserver, kube-aggregator) no longer has it; no removal was announced"

// gvkString writes "apps/v1 Deployment" ("v1 Endpoints" for the core group).
func gvkString(gvk schema.GroupVersionKind) string {
	return gvk.GroupVersion().String() + " " + gvk.Kind
}
