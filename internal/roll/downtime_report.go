package roll

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// DowntimeReport is what the roll's downtime sampler measured, written by
// `roll --report FILE` as JSON (and FILE.md as Markdown). Durations are in
// seconds.
type DowntimeReport struct {
	Roll  string    `json:"roll"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// IntervalSeconds between samples; the seconds without ready endpoints
	// are accurate to one interval.
	IntervalSeconds float64 `json:"interval_seconds"`
	Samples         int     `json:"samples"`
	// ZeroDowntime is true only when every Service that had a ready
	// endpoint kept one at every sample, no probe request failed or timed
	// out, and the endpoints were observed the whole time.
	ZeroDowntime bool `json:"zero_downtime"`
	// UnobservedSeconds: time the EndpointSlice cache could not be read
	// (not synced, watch failing; LastError says why).
	UnobservedSeconds float64 `json:"unobserved_seconds"`
	LastError         string  `json:"last_error,omitempty"`
	// Services, worst first: most seconds without a ready endpoint, then
	// most outages, then fewest ready endpoints at the worst, then name.
	Services []ServiceDowntime `json:"services"`
	// GateHoldServices ("namespace/name") are the Services of gate hold's
	// own pods, ready only while the gate says GO: listed, not counted.
	GateHoldServices []string `json:"gate_hold_services,omitempty"`
	// Probes, worst first: most failed and timed-out requests.
	Probes []ProbeDowntime `json:"probes"`
	// Nodes in the order they finished, with their step timings.
	Nodes []NodeTimings `json:"nodes"`
}

// ServiceDowntime is one Service's line of the report.
type ServiceDowntime struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	// MinReady and MaxReady are the fewest and most ready endpoints seen.
	MinReady int `json:"min_ready_endpoints"`
	MaxReady int `json:"max_ready_endpoints"`
	// NoReadySeconds: time without a ready endpoint after it had one;
	// Outages how many times it lost its last one; LongestOutageSeconds
	// the longest of them.
	NoReadySeconds       float64 `json:"no_ready_endpoints_seconds"`
	Outages              int     `json:"outages"`
	LongestOutageSeconds float64 `json:"longest_outage_seconds"`
	// NoReadyAtEnd: it had none at the last sample.
	NoReadyAtEnd bool `json:"no_ready_endpoints_at_end,omitempty"`
	// NeverReady: it had no ready endpoint at any sample (scaled to zero,
	// no selector...): not counted as downtime.
	NeverReady bool `json:"never_ready,omitempty"`
}

func (s ServiceDowntime) down() bool { return s.NoReadySeconds > 0 || s.Outages > 0 }

// ProbeDowntime is one probe's line of the report.
type ProbeDowntime struct {
	Probe    string `json:"probe"`
	URL      string `json:"url"`
	Requests int    `json:"requests"`
	// Failed: an unexpected status or an error; Timeouts: no answer in
	// time.
	Failed       int        `json:"failed"`
	Timeouts     int        `json:"timeouts"`
	FirstFailure *time.Time `json:"first_failure,omitempty"`
	LastFailure  *time.Time `json:"last_failure,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
}

func (p ProbeDowntime) down() bool { return p.Failed+p.Timeouts > 0 }

// NodeTimings are one node's step durations in seconds (0: the step did
// not run, e.g. surge without --surge).
type NodeTimings struct {
	Node        string  `json:"node"`
	Replacement string  `json:"replacement,omitempty"`
	Gate        float64 `json:"gate_wait_seconds"`
	Cordon      float64 `json:"cordon_seconds"`
	Surge       float64 `json:"surge_seconds,omitempty"`
	Drain       float64 `json:"drain_seconds"`
	Terminate   float64 `json:"terminate_seconds"`
	// Deregister is the wait before the termination until no load balancer
	// routed to the node's instance; LoadBalancers those that let it go.
	Deregister    float64  `json:"lb_deregistration_seconds"`
	LoadBalancers []string `json:"load_balancers,omitempty"`
	// Replace: until the replacement was Ready and the evicted workloads
	// Running again.
	Replace float64 `json:"replacement_ready_seconds"`
	Total   float64 `json:"total_seconds"`
	// LeftGroup are the instances claimed as the replacement that left the
	// group before their node was Ready (Auto Scaling replaced them).
	LeftGroup []string `json:"instances_left_group,omitempty"`
}

// report builds the report from the sampler's state.
func (s *sampler) report(roll string) *DowntimeReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &DowntimeReport{Roll: roll, Start: s.start.UTC(), End: s.last.UTC(), IntervalSeconds: s.interval.Seconds(),
		Samples: s.samples, UnobservedSeconds: s.unobserved.Seconds(), LastError: s.lastErr,
		Services: []ServiceDowntime{}, Probes: []ProbeDowntime{}, Nodes: []NodeTimings{}}
	r.ZeroDowntime = s.unobserved == 0 && !s.blind && s.samples > 0
	for k, rec := range s.services {
		sd := ServiceDowntime{Namespace: k.namespace, Service: k.name, MinReady: rec.minReady, MaxReady: rec.maxReady,
			NoReadySeconds: rec.noReady.Seconds(), Outages: rec.outages, LongestOutageSeconds: rec.longest.Seconds(),
			NoReadyAtEnd: rec.present && rec.everReady && rec.lastReady == 0, NeverReady: !rec.everReady}
		if sd.down() || sd.NoReadyAtEnd {
			r.ZeroDowntime = false
		}
		r.Services = append(r.Services, sd)
	}
	for k := range s.gateHold {
		r.GateHoldServices = append(r.GateHoldServices, k.namespace+"/"+k.name)
	}
	slices.Sort(r.GateHoldServices)
	slices.SortFunc(r.Services, func(a, b ServiceDowntime) int {
		return cmp.Or(cmp.Compare(b.NoReadySeconds, a.NoReadySeconds), cmp.Compare(b.Outages, a.Outages),
			cmp.Compare(a.MinReady, b.MinReady), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Service, b.Service))
	})
	for _, p := range s.probes {
		rec := s.probeRecs[p.Name]
		pd := ProbeDowntime{Probe: p.Name, URL: rec.url, Requests: rec.requests, Failed: rec.failed, Timeouts: rec.timeouts, LastError: rec.lastError}
		if !rec.firstFailure.IsZero() {
			f, l := rec.firstFailure.UTC(), rec.lastFailure.UTC()
			pd.FirstFailure, pd.LastFailure = &f, &l
		}
		if pd.down() {
			r.ZeroDowntime = false
		}
		r.Probes = append(r.Probes, pd)
	}
	if r.countServices() == 0 && len(r.Probes) == 0 {
		// Nothing was measured: no Service ever had a ready endpoint and no
		// probe is configured. "Zero downtime" would be an empty claim.
		r.ZeroDowntime = false
	}
	slices.SortStableFunc(r.Probes, func(a, b ProbeDowntime) int {
		return cmp.Compare(b.Failed+b.Timeouts, a.Failed+a.Timeouts)
	})
	for _, n := range s.nodes {
		r.Nodes = append(r.Nodes, NodeTimings{Node: n.Node, Replacement: n.Replacement, Gate: n.Gate.Seconds(),
			Cordon: n.Cordon.Seconds(), Surge: n.Surge.Seconds(), Drain: n.Drain.Seconds(), Terminate: n.Terminate.Seconds(),
			Deregister: n.Deregister.Seconds(), LoadBalancers: n.LoadBalancers,
			Replace: n.Replace.Seconds(), Total: n.Total.Seconds(), LeftGroup: n.LeftGroup})
	}
	return r
}

// WriteJSON writes the report as indented JSON.
func (r *DowntimeReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Verdict is the summary's first line: "zero downtime" only when
// ZeroDowntime, otherwise the worst offender and the counts.
func (r *DowntimeReport) Verdict() string {
	if r.ZeroDowntime {
		return fmt.Sprintf("zero downtime: %d Service(s) kept a ready endpoint at each of %d samples, %d probe(s) without a failure",
			r.countServices(), r.Samples, len(r.Probes))
	}
	if r.countServices() == 0 && len(r.Probes) == 0 && r.UnobservedSeconds == 0 && r.Samples > 0 {
		return fmt.Sprintf("downtime not measured: no Service had a ready endpoint in %d samples and the gate policy lists no probes", r.Samples)
	}
	var parts []string
	if n := r.downServices(); n > 0 {
		w := r.Services[0]
		parts = append(parts, fmt.Sprintf("%d Service(s) without a ready endpoint (worst %s/%s: %s in %d outage(s))",
			n, w.Namespace, w.Service, fsec(w.NoReadySeconds), w.Outages))
	}
	if n := r.downProbes(); n > 0 {
		w := r.Probes[0]
		parts = append(parts, fmt.Sprintf("%d probe(s) failing (worst %s: %d failed, %d timed out of %d)",
			n, w.Probe, w.Failed, w.Timeouts, w.Requests))
	}
	if r.UnobservedSeconds > 0 || r.Samples == 0 {
		parts = append(parts, fmt.Sprintf("endpoints unobserved for %s (%s)", fsec(r.UnobservedSeconds), cmp.Or(r.LastError, "no sample")))
	}
	return "DOWNTIME: " + strings.Join(parts, "; ")
}

func (r *DowntimeReport) countServices() int {
	n := 0
	for _, s := range r.Services {
		if !s.NeverReady {
			n++
		}
	}
	return n
}

func (r *DowntimeReport) downServices() int {
	n := 0
	for _, s := range r.Services {
		if s.down() || s.NoReadyAtEnd {
			n++
		}
	}
	return n
}

func (r *DowntimeReport) downProbes() int {
	n := 0
	for _, p := range r.Probes {
		if p.down() {
			n++
		}
	}
	return n
}

// WriteMarkdown writes the summary: the verdict, the offending Services
// and probes worst first, every probe, and the nodes' step timings.
func (r *DowntimeReport) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Roll %s: downtime report\n\n", r.Roll)
	fmt.Fprintf(&b, "**%s**\n\n", r.Verdict())
	fmt.Fprintf(&b, "From %s to %s, %d samples every %s; %d Service(s) with a ready endpoint, %d never ready (not counted).\n\n",
		r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339), r.Samples, fsec(r.IntervalSeconds), r.countServices(), len(r.Services)-r.countServices())
	if len(r.GateHoldServices) > 0 {
		fmt.Fprintf(&b, "Not counted, the gate hold's own (ready only while the gate says GO): %s.\n\n", strings.Join(r.GateHoldServices, ", "))
	}
	if r.downServices() > 0 {
		b.WriteString("## Services without a ready endpoint (worst first)\n\n")
		b.WriteString("| Service | seconds without | outages | longest (s) | min ready | max ready | none at end |\n|---|---|---|---|---|---|---|\n")
		for _, s := range r.Services {
			if s.down() || s.NoReadyAtEnd {
				fmt.Fprintf(&b, "| %s/%s | %s | %d | %s | %d | %d | %v |\n", s.Namespace, s.Service, fnum(s.NoReadySeconds), s.Outages,
					fnum(s.LongestOutageSeconds), s.MinReady, s.MaxReady, s.NoReadyAtEnd)
			}
		}
		b.WriteString("\n")
	}
	// What the endpoints cannot show: an NLB or CLB in instance mode sends
	// connections to a node's instance whatever the Service's endpoints are.
	b.WriteString("Ready endpoints do not show what a load balancer in instance mode (NLB, CLB; externalTrafficPolicy Cluster) sends to a node's instance: only a probe through the load balancer's address sees a termination under its traffic.\n\n")
	if len(r.Probes) > 0 {
		b.WriteString("## Probes (worst first)\n\n| probe | URL | requests | failed | timed out | last error |\n|---|---|---|---|---|---|\n")
		for _, p := range r.Probes {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %s |\n", p.Probe, p.URL, p.Requests, p.Failed, p.Timeouts, strings.ReplaceAll(p.LastError, "|", `\|`))
		}
		b.WriteString("\n")
	}
	if len(r.Nodes) > 0 {
		b.WriteString("## Nodes: step timings (seconds)\n\n| node | replacement | gate wait | cordon | surge | drain | load balancers let go | terminate | replacement ready | total |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, n := range r.Nodes {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n.Node, n.Replacement, fnum(n.Gate), fnum(n.Cordon), fnum(n.Surge),
				fnum(n.Drain), fnum(n.Deregister)+lbCount(n.LoadBalancers), fnum(n.Terminate), fnum(n.Replace), fnum(n.Total))
		}
		for _, n := range r.Nodes {
			if len(n.LeftGroup) > 0 {
				fmt.Fprintf(&b, "\nNode %s: instance(s) %s, claimed as its replacement, left the group before their node was Ready (replaced by Auto Scaling); the roll followed the next launch.\n", n.Node, strings.Join(n.LeftGroup, ", "))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func lbCount(lbs []string) string {
	if len(lbs) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d)", len(lbs))
}

func fnum(s float64) string { return fmt.Sprintf("%.1f", s) }
func fsec(s float64) string { return fnum(s) + "s" }
