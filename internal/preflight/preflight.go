// Package preflight answers, before a cluster upgrade starts, what stands in
// its way: API versions removed or deprecated at the target release that are
// still requested (from the API server's own metrics) or still written
// (manifests, Helm releases), version skew, capacity for the surge, drain
// blockers and add-ons. Each family of findings lives in its own file; a
// Report gathers them and decides the exit status.
package preflight

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// Severity orders findings: a blocker must be fixed before the upgrade, a
// warning should be, info is for the record, and unknown means a source
// could not be read or judged (never reported as clean).
type Severity string

// The severities, most serious first in reports.
const (
	Blocker Severity = "blocker"
	Unknown Severity = "unknown"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// rank orders severities for sorting: blocker, unknown, warning, info.
func (s Severity) rank() int {
	switch s {
	case Blocker:
		return 0
	case Unknown:
		return 1
	case Warning:
		return 2
	}
	return 3
}

// Family names: the check field of findings.
const (
	FamilyAPIsByUse    = "apis-by-use"
	FamilyAPIsBySource = "apis-by-source"
	FamilySkew         = "skew"
	FamilyCapacity     = "capacity"
	FamilyDrain        = "drain"
	FamilyAddons       = "addons"
	FamilyWorkloads    = "workloads"
)

// Finding is one thing preflight found.
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// Object is what the finding is about: "policy/v1beta1
	// PodDisruptionBudget", a node, a node group, an add-on.
	Object string `json:"object"`
	// Source is where it was seen: a file and document, a Helm release, the
	// query API, the cluster.
	Source  string `json:"source"`
	Message string `json:"message"`
	// RemovedRelease is the Kubernetes release ("1.25") that stops serving
	// an API version, for API findings; empty when none is announced.
	RemovedRelease string `json:"removed_release,omitempty"`
	// Replacement is the API version and kind to use instead, when known.
	Replacement string `json:"replacement,omitempty"`
	// NodeGroup is the node group of a node finding, when known.
	NodeGroup string `json:"nodegroup,omitempty"`
	// Rule names the kind of finding within its family
	// ("single-replica-service"), the key a policy sets its severity by;
	// empty for families without rules.
	Rule string `json:"rule,omitempty"`
	// Namespace and Workload name the workload of a workloads finding
	// (Workload as "Deployment/web"); empty for other findings.
	Namespace string `json:"namespace,omitempty"`
	Workload  string `json:"workload,omitempty"`
	// Effect says in plain words what the upgrade will do to the workload;
	// Fix what to change, naming the exact field. Both may be empty.
	Effect string `json:"effect,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// Report is the outcome of a preflight run.
type Report struct {
	Target   Version   `json:"target_version"`
	Findings []Finding `json:"findings"`
}

// Add appends findings.
func (r *Report) Add(f ...Finding) { r.Findings = append(r.Findings, f...) }

// Sort orders findings by severity, then check, object and source, so the
// output is stable.
func (r *Report) Sort() {
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() < b.Severity.rank()
		}
		if a.Check != b.Check {
			return a.Check < b.Check
		}
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		return a.Message < b.Message
	})
}

// Count returns how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Exit statuses of `upgradeguard preflight`. 1 and 3 mean what they mean for
// `gate` (not safe to go; the answer could not be had); 2 is a usage error as
// everywhere.
const (
	ExitClean    = 0 // no blocker, unknown or warning
	ExitBlockers = 1 // at least one blocker
	ExitUsage    = 2 // bad flags or input paths
	ExitUnknown  = 3 // no blocker, but a source could not be read or judged
	ExitWarnings = 4 // warnings only
)

// ExitCode is the exit status the report asks for: blockers first (the
// answer is no whatever else is unknown), then unknown, then warnings.
func (r *Report) ExitCode() int {
	switch {
	case r.Count(Blocker) > 0:
		return ExitBlockers
	case r.Count(Unknown) > 0:
		return ExitUnknown
	case r.Count(Warning) > 0:
		return ExitWarnings
	}
	return ExitClean
}

// Version is a Kubernetes major.minor release.
type Version struct {
	Major, Minor int
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$`)

// ParseVersion reads "1.N", "v1.N" or a full "v1.N.P[-suffix]" (as a
// kubelet reports it) and keeps major.minor.
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("version %q: want 1.N", s)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return Version{major, minor}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// IsZero tells a version that was not given.
func (v Version) IsZero() bool { return v == Version{} }

// Less orders versions.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	return v.Minor < o.Minor
}

// MarshalText writes "1.N".
func (v Version) MarshalText() ([]byte, error) { return []byte(v.String()), nil }
