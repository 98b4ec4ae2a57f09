package preflight

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The API server's own metrics (k8s.io/apiserver/pkg/endpoints/metrics/
// metrics.go, MonitorRequest): apiserver_requested_deprecated_apis is set to
// 1 for a group/version/resource/subresource the first time a deprecated
// version is requested and never reset while the process lives; the
// apiextensions-apiserver sets it for CRD versions marked deprecated, with
// an empty removed_release (pkg/apiserver/customresource_handler.go).
// apiserver_request_total counts every request by the same labels.
const (
	deprecatedAPIsMetric = "apiserver_requested_deprecated_apis"
	requestsMetric       = "apiserver_request_total"
)

// UsageQueries are the PromQL queries of CheckAPIsByUse, for a selector of
// extra label matchers (`cluster="prod"`, may be empty) and a window.
type UsageQueries struct {
	// Deprecated: deprecated versions requested within the window (the
	// gauge joined with the request rate, so one requested once long ago
	// does not count), valued with the requests in the window.
	Deprecated string
	// Requested: every group/version/resource requested within the window,
	// judged against the API table (a version removed at the target but
	// not yet deprecated at the running release never sets the gauge).
	Requested string
	// Present: whether the API server's metrics are there at all.
	Present string
}

// NewUsageQueries writes the queries.
func NewUsageQueries(matchers string, window time.Duration) UsageQueries {
	sel := func(m string) string {
		if matchers == "" {
			return m
		}
		return m + "{" + matchers + "}"
	}
	w := model.Duration(window).String()
	reqs := fmt.Sprintf(`sum by (group, version, resource, subresource) (increase(%s[%s]))`, sel(requestsMetric), w)
	return UsageQueries{
		Deprecated: fmt.Sprintf(`max by (group, version, resource, subresource, removed_release) (%s) * on (group, version, resource, subresource) group_left() (%s > 0)`, sel(deprecatedAPIsMetric), reqs),
		Requested:  reqs + " > 0",
		Present:    fmt.Sprintf(`count(%s)`, sel(requestsMetric)),
	}
}

// usage is one requested group/version/resource/subresource.
type usage struct {
	gvr            schema.GroupVersionResource
	subresource    string
	requests       float64
	deprecated     bool // in apiserver_requested_deprecated_apis
	removedRelease string
}

// CheckAPIsByUse asks the monitoring which API versions were requested in
// the window and judges them at target: the deprecated versions the API
// server itself reports (CRD versions included), and every requested
// version the API table knows to be removed at the target. Each finding
// names group/version/resource, the release that removes it and the
// replacement. Monitoring that cannot be asked, or that has no API server
// metrics, is one unknown finding.
func CheckAPIsByUse(ctx context.Context, q Querier, matchers string, window time.Duration, table *APITable, target Version) []Finding {
	qs := NewUsageQueries(matchers, window)
	unknown := func(msg string) []Finding {
		return []Finding{{Check: FamilyAPIsByUse, Severity: Unknown, Object: "API requests", Source: "query API", Message: msg}}
	}
	present, err := q.Query(ctx, qs.Present)
	if err != nil {
		return unknown(err.Error())
	}
	if len(present) == 0 || present[0].Value == 0 {
		return unknown(fmt.Sprintf("no %s series (%s): is the API server scraped, and do the matchers select it?", requestsMetric, qs.Present))
	}
	dep, err := q.Query(ctx, qs.Deprecated)
	if err != nil {
		return unknown(err.Error())
	}
	req, err := q.Query(ctx, qs.Requested)
	if err != nil {
		return unknown(err.Error())
	}
	uses := map[string]*usage{}
	key := func(m model.Metric) (string, *usage) {
		u := &usage{
			gvr:         schema.GroupVersionResource{Group: string(m["group"]), Version: string(m["version"]), Resource: string(m["resource"])},
			subresource: string(m["subresource"]),
		}
		return u.gvr.String() + "/" + u.subresource, u
	}
	for _, s := range req {
		k, u := key(s.Metric)
		u.requests = float64(s.Value)
		uses[k] = u
	}
	for _, s := range dep {
		k, u := key(s.Metric)
		if cur, ok := uses[k]; ok {
			u = cur
		} else {
			uses[k] = u
		}
		u.deprecated = true
		u.requests = float64(s.Value)
		// Two API servers of different releases may disagree; keep the
		// earliest announced removal.
		rr := string(s.Metric["removed_release"])
		if u.removedRelease == "" || (rr != "" && versionLess(rr, u.removedRelease)) {
			u.removedRelease = rr
		}
	}
	keys := make([]string, 0, len(uses))
	for k := range uses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Finding
	for _, k := range keys {
		if f, ok := judgeUsage(uses[k], table, target, window); ok {
			out = append(out, f)
		}
	}
	out = append(out, Finding{Check: FamilyAPIsByUse, Severity: Info, Object: "API requests", Source: "query API",
		Message: fmt.Sprintf("%d group/version/resources requested in the last %s, %d of them deprecated", len(req), model.Duration(window), len(dep))})
	return out
}

func versionLess(a, b string) bool {
	va, erra := ParseVersion(a)
	vb, errb := ParseVersion(b)
	if erra != nil || errb != nil {
		return a < b
	}
	return va.Less(vb)
}

// judgeUsage makes the finding of one requested resource version.
func judgeUsage(u *usage, table *APITable, target Version, window time.Duration) (Finding, bool) {
	obj := u.gvr.Resource
	if u.subresource != "" {
		obj += "/" + u.subresource
	}
	obj = u.gvr.GroupVersion().String() + " " + obj
	f := Finding{Check: FamilyAPIsByUse, Object: obj, Source: fmt.Sprintf("%s, %.0f requests in %s", requestsMetric, u.requests, model.Duration(window))}
	var j Judgement
	var lc Lifecycle
	if gvk, ok := table.KindOf(u.gvr); ok {
		j = table.Judge(gvk, target)
		lc, _ = table.Lookup(gvk)
	}
	f.Replacement = j.Replacement
	f.RemovedRelease = u.removedRelease
	if f.RemovedRelease == "" {
		f.RemovedRelease = j.Removed
	}
	removed := Version{}
	if f.RemovedRelease != "" {
		if v, err := ParseVersion(f.RemovedRelease); err == nil {
			removed = v
		}
	}
	switch {
	case !removed.IsZero() && !target.Less(removed):
		f.Severity = Blocker
		when := f.RemovedRelease
		if u.removedRelease == "" && lc.RemovedInferred {
			when += " at the latest (" + inferredRemoval + ")"
		}
		f.Message = fmt.Sprintf("still requested, removed in %s (target %s): find the clients (audit log, user agents) and move them", when, target)
	case j.Severity == Blocker:
		f.Severity = Blocker
		f.Message = "still requested: " + j.Message
	case u.deprecated || j.Severity == Warning || j.Severity == Info:
		f.Severity = Warning
		switch {
		case lc.CRD && lc.Warning != "":
			f.Message = "still requested, a deprecated custom resource version: " + lc.Warning
		case lc.CRD || (u.deprecated && j.Severity == "" && !table.groups[u.gvr.Group]):
			// In the gauge, of a group no release of Kubernetes serves:
			// a custom resource version whose CRD was not read.
			f.Message = "still requested, a deprecated custom resource version"
		case f.RemovedRelease == "":
			// Deprecated with no removal announced (or, in the gauge
			// only, a version the table does not know): nothing any
			// known upgrade needs moved.
			f.Severity = Info
			f.Message = "still requested, deprecated, no removal announced: no upgrade known yet needs it moved"
		default:
			f.Message = "still requested, deprecated"
		}
	default:
		return Finding{}, false
	}
	if note := controlPlaneNote(u.gvr); note != "" {
		f.Message += "; " + note
	}
	return f, true
}
