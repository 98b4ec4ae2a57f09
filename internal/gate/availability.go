package gate

// The availability check: what users reach keeps working. Every Service
// that had ready endpoints still has one, every workload has the replicas
// its update strategy promises, every PodDisruptionBudget its desired
// healthy pods (series of collectors/workloads and collectors/pdb).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

func init() {
	registerCheck(checkDef{
		Name:    "availability",
		Order:   70,
		Switch:  "availability.enabled: false",
		Enabled: func(p *Policy) bool { return enabled(p.Availability.Enabled) },
		Defaults: func(p *Policy) {
			if p.Availability.Window == 0 {
				p.Availability.Window = Duration(10 * time.Minute)
			}
		},
		Validate: func(p *Policy, bad func(field, format string, args ...any)) {
			if p.Availability.Window < 0 {
				bad("availability.window", "%s; want a positive duration", p.Availability.Window)
			}
			p.Availability.exclude = nil
			for i, e := range p.Availability.Exclude {
				ms, err := parseMatchers(e)
				switch {
				case err != nil:
					bad(fmt.Sprintf("availability.exclude[%d]", i), "%v", err)
				case len(ms) == 0:
					bad(fmt.Sprintf("availability.exclude[%d]", i), "empty; it would exclude everything")
				default:
					p.Availability.exclude = append(p.Availability.exclude, ms)
				}
			}
		},
		Run: (*Gate).checkAvailability,
	})
}

// AvailabilityPolicy: what users reach must keep working while nodes are
// replaced.
type AvailabilityPolicy struct {
	Enabled *bool `yaml:"enabled"`
	// Window is how far back a Service's ready endpoints and a workload's
	// available replicas are looked for when there is no baseline
	// (default 10m): a Service with a ready endpoint at any time in the
	// window must have one now.
	Window Duration `yaml:"window"`
	// Exclude lists label matcher sets (`namespace="batch"`,
	// `namespace="shop", service=~"canary-.*"`, `deployment="migrate"`,
	// `pdb="legacy"`); a Service, workload or PDB whose series match every
	// matcher of one entry is not judged.
	Exclude []string `yaml:"exclude"`

	exclude [][]matcher
}

// The series the check reads.
const (
	mServiceEndpoints = "upgradeguard_service_endpoints"
	mPDBCurrent       = "upgradeguard_pdb_current_healthy"
	mPDBDesired       = "upgradeguard_pdb_desired_healthy"
)

// workloadKind names one kind's series and its name label.
type workloadKind struct {
	label, desired, available, maxUnavailable string
}

var workloadKinds = []workloadKind{
	{"deployment", "upgradeguard_deployment_spec_replicas", "upgradeguard_deployment_status_replicas_available", "upgradeguard_deployment_strategy_max_unavailable"},
	{"statefulset", "upgradeguard_statefulset_spec_replicas", "upgradeguard_statefulset_status_replicas_available", "upgradeguard_statefulset_strategy_max_unavailable"},
	{"daemonset", "upgradeguard_daemonset_status_desired_number_scheduled", "upgradeguard_daemonset_status_number_available", "upgradeguard_daemonset_strategy_max_unavailable"},
}

// nowNames and refNames are the __name__ regexes of the two queries: the
// state now, and the reference (the baseline, or the window) of ready
// endpoints and available replicas.
func availabilityNames() (now, ref string) {
	n := []string{mServiceEndpoints, mPDBCurrent, mPDBDesired, "upgradeguard_collector_success", mDeploymentGateHold, mServiceGateHold, mPDBGateHold}
	r := []string{mServiceEndpoints}
	for _, k := range workloadKinds {
		n = append(n, k.desired, k.available, k.maxUnavailable)
		r = append(r, k.available)
	}
	return strings.Join(n, "|"), strings.Join(r, "|")
}

// availabilityNowQuery is the query of the state now: every Service's,
// workload's and PDB's series, the workloads collector's success and the
// marks of gate hold's own objects (gatehold.go).
func (g *Gate) availabilityNowQuery() string {
	nowNames, _ := availabilityNames()
	return g.sel(nowNames, `ready!="false"`)
}

// objKey identifies a Service, workload or PDB: its kind ("service",
// "deployment"...), namespace and name.
type objKey struct{ kind, namespace, name string }

func (k objKey) String() string { return k.namespace + "/" + k.name }

// keyOf tells which object a sample is about from its labels, as the
// reference query of a window (max_over_time) drops the metric name.
func keyOf(l map[string]string) (objKey, bool) {
	for _, kind := range []string{"service", "deployment", "statefulset", "daemonset", "pdb"} {
		if v, ok := l[kind]; ok && v != "" {
			return objKey{kind, l["namespace"], v}, true
		}
	}
	return objKey{}, false
}

// objValues are the values of one object's series by metric name; two
// copies of a series (two exporters) keep the worst: the lowest for what
// is now, the highest for the reference.
type objValues map[objKey]map[string]float64

func (o objValues) put(k objKey, name string, v float64, keepHigh bool) {
	m := o[k]
	if m == nil {
		m = map[string]float64{}
		o[k] = m
	}
	old, ok := m[name]
	switch {
	case !ok, isNaN(v):
		m[name] = v
	case isNaN(old):
	case keepHigh && v > old, !keepHigh && v < old:
		m[name] = v
	}
}

// excluded reports whether the policy excludes the series of labels l.
func (p *AvailabilityPolicy) excluded(l map[string]string) bool {
	for _, set := range p.exclude {
		all := true
		for _, m := range set {
			if !m.matches(l) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// checkAvailability judges rows availability/services,
// availability/workloads and availability/pdbs.
//
// The reference is the baseline (the state at the baseline's time, read
// with PromQL's @ modifier) or, without one, the window (max_over_time). A
// Service FAILs when it had a ready endpoint in the reference and has none
// now. A Deployment, StatefulSet or DaemonSet FAILs when its available
// replicas are fewer than the reference - or its desired replicas now, when
// it was scaled down since - minus what its update strategy lets be
// unavailable (upgradeguard_*_strategy_max_unavailable, resolved as its
// controller does). A PDB FAILs when its current healthy pods are fewer
// than its desired healthy pods: the disruption controller's own measure of
// the workload falling below what its owner requires. Gate hold's own
// Deployment, Service and PDB, marked by the exporter, are set aside and
// named in a note: their pods are ready only on GO (gatehold.go).
func (g *Gate) checkAvailability(ctx context.Context, s *evalState) []CheckResult {
	rows := []string{"availability/services", "availability/workloads", "availability/pdbs"}
	_, refNames := availabilityNames()
	nowQ := g.availabilityNowQuery()
	now, err := s.query(ctx, nowQ)
	if err != nil {
		return unknownRows(nowQ, err, rows...)
	}
	p := &g.policy.Availability
	// Gate hold's own objects are ready only on GO: judged, they would
	// hold the gate that holds them (gatehold.go).
	hold := gateHoldOf(now.samples)
	cur := objValues{}
	excluded := map[objKey]bool{}
	for _, smp := range now.samples {
		k, ok := keyOf(smp.labels)
		if !ok || hold[k] {
			continue
		}
		if p.excluded(smp.labels) {
			excluded[k] = true
			continue
		}
		cur.put(k, smp.labels["__name__"], smp.value, false)
	}
	// Without the workloads collector's own success series, no Service
	// series means nothing: the collector may be off, too old or not
	// scraped. With it, no Service series means no Service has an
	// EndpointSlice (as in a cluster whose API server advertises a loopback
	// address, which the kubernetes Service's slice may not hold).
	var collector []string
	for _, smp := range now.samples {
		if smp.labels["__name__"] == "upgradeguard_collector_success" && smp.labels["collector"] == "workloads" {
			if smp.value != 1 {
				collector = append(collector, fmtNum(smp.value))
			} else {
				collector = append(collector, "")
			}
		}
	}
	switch {
	case len(collector) == 0:
		return unknownRows(nowQ, errors.New(`no upgradeguard_collector_success{collector="workloads"}: the exporter's workloads collector is off, too old, or not scraped`), rows...)
	case slices.ContainsFunc(collector, func(v string) bool { return v != "" }):
		return unknownRows(nowQ, fmt.Errorf(`upgradeguard_collector_success{collector="workloads"} is %s: its Services and workloads are stale`, strings.Join(collector, ", ")), rows...)
	}

	window := fmt.Sprintf("max_over_time(%s[%s])", g.sel(refNames, `ready!="false"`), promDuration(time.Duration(p.Window)))
	refQ, refWhat := window, "in the last "+p.Window.String()
	var fallback string
	if b := g.cfg.Baseline; b != nil && !b.Time.IsZero() {
		refQ = fmt.Sprintf("%s @ %d", g.sel(refNames, `ready!="false"`), b.Time.Unix())
		refWhat = "at the baseline (" + b.Time.UTC().Format(time.RFC3339) + ")"
	}
	ref, err := s.query(ctx, refQ)
	if err == nil && refQ != window && len(ref.samples) == 0 {
		// The baseline predates the workloads collector, or its data is
		// gone: the window is the next best reference.
		fallback = "no series at the baseline's time; judged against the last " + p.Window.String() + " instead"
		refQ, refWhat = window, "in the last "+p.Window.String()
		ref, err = s.query(ctx, refQ)
	}
	if err != nil {
		return unknownRows(refQ, err, rows...)
	}
	prev := objValues{}
	for _, smp := range ref.samples {
		k, ok := keyOf(smp.labels)
		if !ok || hold[k] || excluded[k] || p.excluded(smp.labels) {
			continue
		}
		// The window drops the names; each kind has one series here.
		prev.put(k, "ref", smp.value, true)
	}
	note := joinNotes(joinNotes(now.note, ref.note), fallback)
	queries := nowQ + "; " + refQ
	out := []CheckResult{
		withNote(withNote(g.judgeServices(cur, prev, refWhat, queries), note), hold.note("service")),
		withNote(withNote(g.judgeWorkloads(cur, prev, refWhat, queries), note), hold.note("deployment")),
		withNote(withNote(g.judgePDBs(cur, nowQ), now.note), hold.note("pdb")),
	}
	if n := len(excluded); n > 0 {
		for i := range out {
			out[i] = withNote(out[i], fmt.Sprintf("%d excluded by availability.exclude", n))
		}
	}
	return out
}

// outcome collects the judgements of one row.
type outcome struct {
	failed, unknown, gone []string
	judged                int
}

func (o *outcome) row(r CheckResult, what string) CheckResult {
	switch {
	case len(o.failed) > 0:
		r.Status, r.Value = Fail, fmt.Sprintf("%d of %d %s", len(o.failed), o.judged, what)
		r.Why = list(o.failed)
		if len(o.unknown) > 0 {
			r.Why += "; unknown: " + list(o.unknown)
		}
	case len(o.unknown) > 0:
		r.Status, r.Value, r.Why = Unknown, fmt.Sprintf("%d of %d unknown", len(o.unknown), o.judged), list(o.unknown)
	default:
		r.Status, r.Value = Pass, fmt.Sprintf("%d judged", o.judged)
	}
	if len(o.gone) > 0 {
		r = withNote(r, "gone since (deleted, not judged): "+list(o.gone))
	}
	return r
}

func (g *Gate) judgeServices(cur, prev objValues, refWhat, q string) CheckResult {
	r := CheckResult{Name: "availability/services", Query: q,
		Threshold: "a ready endpoint now for every Service that had one " + refWhat}
	var o outcome
	for k, v := range prev {
		if k.kind != "service" {
			continue
		}
		before := v["ref"]
		if isNaN(before) || before <= 0 {
			continue // never served in the reference: nothing to lose
		}
		o.judged++
		c, ok := cur[k]
		ready, ok2 := c[mServiceEndpoints]
		switch {
		case !ok || !ok2:
			o.gone = append(o.gone, "service "+k.String())
		case isNaN(ready):
			o.unknown = append(o.unknown, fmt.Sprintf("service %s: ready endpoints NaN", k))
		case ready < 1:
			o.failed = append(o.failed, fmt.Sprintf("service %s has no ready endpoint (%s %s)", k, fmtNum(before), refWhat))
		}
	}
	return o.row(r, "Services without a ready endpoint")
}

func (g *Gate) judgeWorkloads(cur, prev objValues, refWhat, q string) CheckResult {
	r := CheckResult{Name: "availability/workloads", Query: q,
		Threshold: "available >= min(available " + refWhat + ", desired now) - the strategy's maxUnavailable"}
	var o outcome
	for _, kind := range workloadKinds {
		for k, p := range prev {
			if k.kind != kind.label {
				continue
			}
			before := p["ref"]
			if isNaN(before) {
				o.judged++
				o.unknown = append(o.unknown, fmt.Sprintf("%s %s: available %s is NaN", k.kind, k, refWhat))
				continue
			}
			c, ok := cur[k]
			if !ok {
				o.gone = append(o.gone, k.kind+" "+k.String())
				continue
			}
			o.judged++
			avail, okA := c[kind.available]
			maxU, okM := c[kind.maxUnavailable]
			switch {
			case !okA || !okM:
				o.unknown = append(o.unknown, fmt.Sprintf("%s %s: no %s", k.kind, k, map[bool]string{true: kind.maxUnavailable, false: kind.available}[okA]))
				continue
			case isNaN(avail) || isNaN(maxU):
				o.unknown = append(o.unknown, fmt.Sprintf("%s %s: NaN", k.kind, k))
				continue
			}
			expect := before
			if d, ok := c[kind.desired]; ok && !isNaN(d) && d < expect {
				expect = d // scaled down since: the new size is the promise
			}
			if need := expect - maxU; avail < need {
				o.failed = append(o.failed, fmt.Sprintf("%s %s has %s available, needs %s (%s %s, maxUnavailable %s)",
					k.kind, k, fmtNum(avail), fmtNum(need), fmtNum(before), refWhat, fmtNum(maxU)))
			}
		}
	}
	return o.row(r, "workloads below their promise")
}

func (g *Gate) judgePDBs(cur objValues, q string) CheckResult {
	r := CheckResult{Name: "availability/pdbs", Query: q, Threshold: mPDBCurrent + " >= " + mPDBDesired}
	var o outcome
	for k, v := range cur {
		if k.kind != "pdb" {
			continue
		}
		o.judged++
		c, okC := v[mPDBCurrent]
		d, okD := v[mPDBDesired]
		switch {
		case !okC || !okD:
			o.unknown = append(o.unknown, fmt.Sprintf("pdb %s: current or desired healthy missing", k))
		case isNaN(c) || isNaN(d):
			o.unknown = append(o.unknown, fmt.Sprintf("pdb %s: NaN", k))
		case c < d:
			o.failed = append(o.failed, fmt.Sprintf("pdb %s has %s healthy pods, requires %s", k, fmtNum(c), fmtNum(d)))
		}
	}
	return o.row(r, "PDBs below their desired healthy pods")
}
