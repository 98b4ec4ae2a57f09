package gate

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAvailabilityRows: each way a Service, workload or PDB can break (and
// its data go missing) makes its row FAIL or UNKNOWN, never GO.
func TestAvailabilityRows(t *testing.T) {
	f := newFake(t)
	g, _ := newGate(t, f, testPolicy(t, ""))
	svc := []string{"__name__", "upgradeguard_service_endpoints", "service", "web", "ready", "true"}
	runRowCases(t, f, g, "node-b", []rowCase{
		// A Service that had ready endpoints in the window has none.
		{"0", svc, "availability/services", Fail, "service shop/web has no ready endpoint (3 in the last 10m0s)"},
		{"NaN", svc, "availability/services", Unknown, "service shop/web: ready endpoints NaN"},
		// The collector off, too old or not scraped, or failing.
		{"", []string{"__name__", "upgradeguard_collector_success", "collector", "workloads"}, "availability/services", Unknown, "workloads collector is off, too old, or not scraped"},
		{"", []string{"__name__", "upgradeguard_collector_success", "collector", "workloads"}, "availability/workloads", Unknown, "workloads collector is off, too old, or not scraped"},
		{"", []string{"__name__", "upgradeguard_collector_success", "collector", "workloads"}, "availability/pdbs", Unknown, "workloads collector is off, too old, or not scraped"},
		{"0", []string{"__name__", "upgradeguard_collector_success", "collector", "workloads"}, "availability/services", Unknown, "is 0: its Services and workloads are stale"},
		// 3 available in the window, maxUnavailable 1: 2 needed.
		{"1", []string{"__name__", "upgradeguard_deployment_status_replicas_available"}, "availability/workloads", Fail,
			"deployment shop/web has 1 available, needs 2 (3 in the last 10m0s, maxUnavailable 1)"},
		{"", []string{"__name__", "upgradeguard_deployment_strategy_max_unavailable"}, "availability/workloads", Unknown,
			"deployment shop/web: no upgradeguard_deployment_strategy_max_unavailable"},
		{"NaN", []string{"__name__", "upgradeguard_deployment_status_replicas_available"}, "availability/workloads", Unknown, "deployment shop/web: NaN"},
		{"1", []string{"__name__", "upgradeguard_pdb_current_healthy"}, "availability/pdbs", Fail, "pdb shop/web has 1 healthy pods, requires 2"},
		{"NaN", []string{"__name__", "upgradeguard_pdb_desired_healthy"}, "availability/pdbs", Unknown, "pdb shop/web: NaN"},
		{"", []string{"__name__", "upgradeguard_pdb_desired_healthy"}, "availability/pdbs", Unknown, "current or desired healthy missing"},
	})
}

// TestAvailabilityPasses: what is no loss of availability passes.
func TestAvailabilityPasses(t *testing.T) {
	f := newFake(t)
	g, _ := newGate(t, f, testPolicy(t, ""))
	for _, c := range []struct {
		name string
		data func() []series
		row  string
		note string
	}{
		{"one replica down, as the strategy allows", func() []series {
			return replace(healthy(), "2", "__name__", "upgradeguard_deployment_status_replicas_available")
		}, "availability/workloads", ""},
		{"scaled down since the window", func() []series {
			ss := replace(healthy(), "1", "__name__", "upgradeguard_deployment_status_replicas_available")
			ss = replace(ss, "1", "__name__", "upgradeguard_deployment_spec_replicas")
			return replace(ss, "0", "__name__", "upgradeguard_deployment_strategy_max_unavailable")
		}, "availability/workloads", ""},
		{"a Service that never had a ready endpoint", func() []series {
			ss := replace(healthy(), "0", "__name__", "upgradeguard_service_endpoints", "service", "web", "ready", "true")
			return replace(ss, "0", "__name__", "max:upgradeguard_service_endpoints", "service", "web")
		}, "availability/services", ""},
		{"a deleted Service", func() []series {
			return replace(healthy(), "", "__name__", "upgradeguard_service_endpoints", "service", "web")
		}, "availability/services", "gone since (deleted, not judged): service shop/web"},
		// Seen in the testbed: an API server on 127.0.0.1 gives the
		// kubernetes Service no EndpointSlice, so a cluster without other
		// Services has no Service series at all.
		{"no Service has an EndpointSlice", func() []series {
			ss := replace(healthy(), "", "__name__", "upgradeguard_service_endpoints")
			return replace(ss, "", "__name__", "max:upgradeguard_service_endpoints")
		}, "availability/services", ""},
		{"a deleted Deployment", func() []series {
			ss := healthy()
			for _, n := range []string{"upgradeguard_deployment_status_replicas_available", "upgradeguard_deployment_spec_replicas", "upgradeguard_deployment_strategy_max_unavailable"} {
				ss = replace(ss, "", "__name__", n)
			}
			return ss
		}, "availability/workloads", "gone since (deleted, not judged): deployment shop/web"},
	} {
		f.set(c.data()...)
		e := eval(t, g, "node-b")
		if e.Verdict != GO {
			t.Errorf("%s: verdict %s:\n%s", c.name, e.Verdict, dump(e))
		}
		if r := row(t, e, c.row); !strings.Contains(r.Why, c.note) {
			t.Errorf("%s: %s %q, want a note %q", c.name, c.row, r.Why, c.note)
		}
	}
}

// TestAvailabilityExclude: matchers of the policy take a Service, a
// namespace or a PDB out of the check; a bad matcher is a policy error.
func TestAvailabilityExclude(t *testing.T) {
	f := newFake(t)
	g, _ := newGate(t, f, testPolicy(t, "availability:\n  exclude:\n  - 'namespace=\"shop\", service=\"web\"'\n  - 'pdb=~\"we.*\"'\n"))
	ss := replace(healthy(), "0", "__name__", "upgradeguard_service_endpoints", "service", "web", "ready", "true")
	ss = replace(ss, "0", "__name__", "upgradeguard_pdb_current_healthy")
	f.set(ss...)
	e := eval(t, g, "node-b")
	if e.Verdict != GO {
		t.Fatalf("verdict %s with shop/web and the PDB excluded:\n%s", e.Verdict, dump(e))
	}
	wantRow(t, e, "availability/services", Pass, "2 excluded by availability.exclude")
	// The Deployment of the same name is not excluded by a service matcher.
	f.set(replace(ss, "0", "__name__", "upgradeguard_deployment_status_replicas_available")...)
	wantRow(t, eval(t, g, "node-b"), "availability/workloads", Fail, "deployment shop/web")

	for yml, want := range map[string]string{
		"availability:\n  exclude: ['namespace=shop']\n": "availability.exclude[0]: bad label matcher",
		"availability:\n  exclude: ['']\n":               "availability.exclude[0]: empty",
		"availability:\n  window: -5m\n":                 "negative duration",
	} {
		if _, err := ParsePolicy([]byte(yml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yml, err, want)
		}
	}
}

// TestAvailabilityBaseline: with a baseline, the reference is the state at
// the baseline's time (PromQL @), not the window; a baseline older than the
// workloads collector falls back to the window, saying so.
func TestAvailabilityBaseline(t *testing.T) {
	f := newFake(t)
	at := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	g, _ := newGate(t, f, testPolicy(t, ""), func(c *Config) { c.Baseline = &Baseline{Time: at} })
	ss := append(healthy(),
		// At the baseline, shop/api had a ready endpoint; the window
		// (max:) never saw it ready: only the baseline says it should be.
		ser("2", "__name__", "at:upgradeguard_service_endpoints", "job", "upgradeguard", "cluster", "prod", "namespace", "shop", "service", "api", "ready", "true"),
		ser("0", "__name__", "upgradeguard_service_endpoints", "job", "upgradeguard", "cluster", "prod", "namespace", "shop", "service", "api", "ready", "true"),
	)
	f.set(ss...)
	e := eval(t, g, "node-b")
	wantRow(t, e, "availability/services", Fail, "service shop/api has no ready endpoint (2 at the baseline (2026-11-30T06:00:00Z))")
	if r := row(t, e, "availability/services"); !strings.Contains(r.Query, fmt.Sprintf(" @ %d", at.Unix())) {
		t.Errorf("query %q does not read the baseline's time", r.Query)
	}
	// No series at the baseline's time: the window decides, with a note.
	f.set(healthy()...)
	e = eval(t, g, "node-b")
	wantRow(t, e, "availability/services", Pass, "no series at the baseline's time; judged against the last 10m0s instead")
}

// TestAvailabilityOff: the check turned off is a SKIP row, and the
// workloads collector is then not required.
func TestAvailabilityOff(t *testing.T) {
	f := newFake(t)
	p := testPolicy(t, "availability:\n  enabled: false\n")
	if strings.Contains(strings.Join(p.Monitoring.Collectors, ","), "workloads") {
		t.Errorf("monitoring.collectors %v requires workloads with availability off", p.Monitoring.Collectors)
	}
	g, _ := newGate(t, f, p)
	f.set(replace(healthy(), "", "__name__", "upgradeguard_service_endpoints")...)
	e := eval(t, g, "node-b")
	wantRow(t, e, "availability", Skip, "availability.enabled: false")
	if e.Verdict != GO {
		t.Errorf("verdict %s:\n%s", e.Verdict, dump(e))
	}
}
