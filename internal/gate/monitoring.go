package gate

// The monitoring check: the exporter is scraped (up), its collectors
// succeed, and its AWS data is fresh. Without these, every other answer is
// built on stale or missing data.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upgradeguard/upgradeguard/alerts"
)

func init() {
	registerCheck(checkDef{
		Name:  "monitoring",
		Order: 10,
		Defaults: func(p *Policy) {
			if p.Monitoring.Collectors == nil {
				p.Monitoring.Collectors = []string{"nodes", "pdb"}
				if enabled(p.Availability.Enabled) {
					p.Monitoring.Collectors = append(p.Monitoring.Collectors, "workloads")
				}
			}
			if p.Monitoring.AWSMaxAge == nil {
				d := Duration(15 * time.Minute)
				p.Monitoring.AWSMaxAge = &d
			}
			if p.Monitoring.AWSQuotaMaxAge == nil {
				d := Duration(3 * time.Hour)
				p.Monitoring.AWSQuotaMaxAge = &d
			}
			if p.Monitoring.Watchdog == nil {
				w := alerts.WatchdogAlert
				p.Monitoring.Watchdog = &w
			}
		},
		Validate: func(p *Policy, bad func(field, format string, args ...any)) {
			if w := p.Monitoring.Watchdog; w != nil && *w != "" && !model.LabelValue(*w).IsValid() {
				bad("monitoring.watchdog", "invalid alert name %q", *w)
			}
			for i, c := range p.Monitoring.Collectors {
				if c == "" {
					bad(fmt.Sprintf("monitoring.collectors[%d]", i), "empty collector name")
				}
			}
		},
		Run: (*Gate).checkMonitoring,
	})
}

// MonitoringPolicy: the monitoring itself must be alive for any GO.
type MonitoringPolicy struct {
	// Collectors whose upgradeguard_collector_success must be present (and
	// 1); every collector the exporter reports must succeed anyway. Default:
	// nodes and pdb, and workloads while the availability check is on.
	Collectors []string `yaml:"collectors"`
	// AWSMaxAge is the oldest acceptable AWS refresh
	// (upgradeguard_aws_refresh_last_success_timestamp_seconds) of the AWS
	// collectors the exporter runs (default 15m; 0 turns the check off).
	AWSMaxAge *Duration `yaml:"aws_max_age"`
	// AWSQuotaMaxAge is the same for the quota limits and the utilization
	// report, which the exporter refreshes hourly by default (default 3h).
	AWSQuotaMaxAge *Duration `yaml:"aws_quota_max_age"`
	// Watchdog names the always-firing alert that must be firing in ALERTS,
	// proving that the alerting rules are evaluated and their ALERTS reach
	// the query (default alerts.WatchdogAlert, UpgradeGuardWatchdog, of the
	// bundle's rules). Only an explicit `watchdog: ""` turns the
	// requirement off.
	Watchdog *string `yaml:"watchdog"`
}

var awsCollectors = map[string]bool{"cni": true, "awsquota": true}

// checkMonitoring judges the monitoring itself: rows monitoring/up,
// monitoring/collectors, monitoring/aws-fresh and monitoring/watchdog.
func (g *Gate) checkMonitoring(ctx context.Context, s *evalState) []CheckResult {
	var wd CheckResult
	var wg sync.WaitGroup
	wg.Go(func() { wd = g.checkWatchdog(ctx, s) })
	out := g.checkExporter(ctx, s)
	wg.Wait()
	return append(out, wd)
}

// checkExporter is the exporter's part of the monitoring check: rows
// monitoring/up, monitoring/collectors and monitoring/aws-fresh.
func (g *Gate) checkExporter(ctx context.Context, s *evalState) []CheckResult {
	q := g.sel("up|upgradeguard_collector_success|upgradeguard_aws_refresh_last_success_timestamp_seconds")
	res, err := s.query(ctx, q)
	if err != nil {
		return unknownRows(q, err, "monitoring/up", "monitoring/collectors", "monitoring/aws-fresh")
	}
	m := byName(res.samples)
	var out []CheckResult

	// up
	up := CheckResult{Name: "monitoring/up", Query: q, Threshold: "every exporter target up == 1"}
	var down, nan []string
	for _, smp := range m["up"] {
		inst := smp.labels["instance"]
		switch {
		case isNaN(smp.value):
			nan = append(nan, inst)
		case smp.value != 1:
			down = append(down, inst)
		}
	}
	switch {
	case len(m["up"]) == 0:
		up.Status, up.Value = Unknown, "no series"
		up.Why = fmt.Sprintf("no up series for job=~%q: Prometheus does not scrape the exporter, or the query reaches no Prometheus", g.policy.Job)
	case len(down) > 0:
		up.Status, up.Value = Fail, fmt.Sprintf("%d of %d down", len(down), len(m["up"]))
		up.Why = "exporter target down: " + list(down)
	case len(nan) > 0:
		up.Status, up.Value, up.Why = Unknown, "NaN", "up is NaN for "+list(nan)
	default:
		up.Status, up.Value = Pass, fmt.Sprintf("%d up", len(m["up"]))
	}
	out = append(out, withNote(up, res.note))

	// collectors
	col := CheckResult{Name: "monitoring/collectors", Query: q,
		Threshold: "upgradeguard_collector_success == 1 for every collector; present for " + strings.Join(g.policy.Monitoring.Collectors, ", ")}
	success := perLabel(m["upgradeguard_collector_success"], "collector", false)
	var failed, missing []string
	nan = nil
	for c, v := range success {
		switch {
		case isNaN(v):
			nan = append(nan, c)
		case v != 1:
			failed = append(failed, c)
		}
	}
	for _, c := range g.policy.Monitoring.Collectors {
		if _, ok := success[c]; !ok {
			missing = append(missing, c)
		}
	}
	names := make([]string, 0, len(success))
	for c := range success {
		names = append(names, c)
	}
	col.Value = "reporting: " + list(names)
	switch {
	case len(success) == 0:
		col.Status, col.Value = Unknown, "no series"
		col.Why = "no upgradeguard_collector_success series: the exporter's metrics are not in the monitoring"
	case len(failed) > 0:
		col.Status, col.Why = Fail, "collectors failing (serving stale data): "+list(failed)
	case len(missing) > 0:
		col.Status, col.Why = Unknown, "required collectors not reporting: "+list(missing)
	case len(nan) > 0:
		col.Status, col.Why = Unknown, "collector success is NaN for "+list(nan)
	default:
		col.Status = Pass
	}
	out = append(out, col)

	// AWS freshness: each refresher (collector label cni, awsquota_usage,
	// awsquota_limits, awsquota_report) per account and region.
	maxAge := time.Duration(*g.policy.Monitoring.AWSMaxAge)
	quotaMaxAge := time.Duration(*g.policy.Monitoring.AWSQuotaMaxAge)
	limitFor := func(refresher string) time.Duration {
		if refresher == "awsquota_limits" || refresher == "awsquota_report" {
			return quotaMaxAge
		}
		return maxAge
	}
	var running []string
	for c := range success {
		if awsCollectors[c] {
			running = append(running, c)
		}
	}
	sort.Strings(running)
	switch {
	case maxAge == 0:
		out = append(out, skipRow("monitoring/aws-fresh", "monitoring.aws_max_age is 0"))
	case len(success) == 0:
		out = append(out, CheckResult{Name: "monitoring/aws-fresh", Query: q, Status: Unknown, Why: "no collector reports, so which AWS collectors run is unknown"})
	case len(running) == 0:
		out = append(out, skipRow("monitoring/aws-fresh", "the exporter runs no AWS collector (cni, awsquota)"))
	default:
		aws := CheckResult{Name: "monitoring/aws-fresh", Query: q,
			Threshold: fmt.Sprintf("last AWS refresh at most %s ago (quota limits and report %s)", maxAge, quotaMaxAge)}
		type refresh struct {
			refresher string
			age       float64
		}
		oldest := map[string]refresh{} // refresher/account/region -> oldest
		// The exporter runs each AWS collector in every target (account and
		// region): each refresher seen must have refreshed in every target
		// seen.
		targets, refreshers := map[string]bool{}, map[string]bool{}
		family := func(refresher string) string {
			for _, c := range running {
				if refresher == c || strings.HasPrefix(refresher, c+"_") {
					return c
				}
			}
			return ""
		}
		for _, smp := range m["upgradeguard_aws_refresh_last_success_timestamp_seconds"] {
			t := targetOf(smp).String()
			k := smp.labels["collector"] + "/" + t
			age := float64(s.at.UnixMilli())/1000 - smp.value
			if old, ok := oldest[k]; !ok || isNaN(age) || age > old.age {
				oldest[k] = refresh{smp.labels["collector"], age}
			}
			if family(smp.labels["collector"]) != "" && smp.labels["account"] != "" {
				targets[t], refreshers[smp.labels["collector"]] = true, true
			}
		}
		var stale, unknown, ages []string
		for t := range targets {
			for rf := range refreshers {
				if _, ok := oldest[rf+"/"+t]; !ok {
					unknown = append(unknown, rf+"/"+t+" has no successful refresh yet")
				}
			}
		}
		for _, c := range running {
			seen := false
			for k, r := range oldest {
				if family(r.refresher) != c {
					continue
				}
				seen = true
				switch {
				case isNaN(r.age):
					unknown = append(unknown, k+" NaN")
				case r.age > limitFor(r.refresher).Seconds():
					stale = append(stale, fmt.Sprintf("%s %s ago", k, time.Duration(r.age*float64(time.Second)).Round(time.Second)))
				}
			}
			if !seen {
				unknown = append(unknown, c+" has no successful refresh yet")
			}
		}
		for k, r := range oldest {
			ages = append(ages, fmt.Sprintf("%s %ss", k, fmtNum(float64(int(r.age)))))
		}
		aws.Value = list(ages)
		switch {
		case len(stale) > 0:
			aws.Status, aws.Why = Fail, "AWS data stale: "+list(stale)
		case len(unknown) > 0:
			aws.Status, aws.Why = Unknown, list(unknown)
		default:
			aws.Status = Pass
		}
		out = append(out, aws)
	}
	return out
}
