package alerts

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// GroupAPIs holds the alert on removed API versions still requested.
const GroupAPIs = "upgradeguard-apis"

// DefaultRemovedAPIRelease is the release whose removals the default bundle
// watches: the one after the Kubernetes release of the k8s.io/api module
// upgradeguard is built with (1.37).
const DefaultRemovedAPIRelease = "1.38"

var releaseRE = regexp.MustCompile(`^1\.(\d+)$`)

// releasesUpTo is a regex of every release 1.0 .. release, for the
// removed_release label (a string: PromQL compares no versions), e.g.
// 1\.([0-9]|[1-2][0-9]|3[0-8]) for 1.38.
func releasesUpTo(release string) string {
	m := releaseRE.FindStringSubmatch(release)
	if m == nil {
		return regexp.QuoteMeta(release)
	}
	n, _ := strconv.Atoi(m[1])
	tens, units := n/10, n%10
	alts := []string{}
	if tens == 0 {
		alts = append(alts, fmt.Sprintf("[0-%d]", units))
	} else {
		alts = append(alts, "[0-9]")
		if tens > 1 {
			alts = append(alts, fmt.Sprintf("[1-%d][0-9]", tens-1))
		}
		alts = append(alts, fmt.Sprintf("%d[0-%d]", tens, units))
	}
	return `1\\.(` + strings.Join(alts, "|") + ")"
}

// apisGroup is the rule group of UpgradeGuardRemovedAPIInUse: the API
// server's apiserver_requested_deprecated_apis (set once a deprecated
// version is requested, never reset: k8s.io/apiserver
// pkg/endpoints/metrics/metrics.go) joined with the requests of the last
// hour, so only versions still requested count. The same join as
// `upgradeguard preflight`'s apis-by-use family (internal/preflight/apisbyuse.go).
func apisGroup(o Options) group {
	keep := o.by("group", "version", "resource", "subresource")
	return group{
		name: GroupAPIs,
		alerts: []Alert{{
			Name: "UpgradeGuardRemovedAPIInUse", Severity: "info", For: 15 * time.Minute,
			Expr: "max " + o.by("group", "version", "resource", "subresource", "removed_release") + " (" +
				selector("apiserver_requested_deprecated_apis", o.APIServerJob, []string{`removed_release=~"` + releasesUpTo(o.RemovedAPIRelease) + `"`}) + ")" +
				" * on (" + strings.TrimSuffix(strings.TrimPrefix(keep, "by ("), ")") + ") group_left()" +
				" (sum " + keep + " (increase(" + selector("apiserver_request_total", o.APIServerJob, nil) + "[1h])) > 0)",
			Summary: "An API version removed by the upgrade's target release is still requested.",
			Description: "{{ $labels.group }}/{{ $labels.version }} {{ $labels.resource }} is removed in Kubernetes {{ $labels.removed_release }} and was requested {{ $value | humanize }} times in the last hour: " +
				"those clients fail after the upgrade to " + o.RemovedAPIRelease + ". Run upgradeguard preflight --target-version " + o.RemovedAPIRelease + " for the replacement.",
		}},
	}
}
