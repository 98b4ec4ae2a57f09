package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/roll"
)

// TestRollUsage: a roll that cannot be what the operator meant never
// starts: bad usage exits with 2 before any API is called.
func TestRollUsage(t *testing.T) {
	q := "--query.url=http://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no query URL", []string{"roll", "--nodegroup", "blue"}},
		{"no node group or selector", []string{"roll", q}},
		{"a single node", []string{"roll", q, "--nodegroup", "blue", "--node", "ip-10-0-0-1"}},
		{"max unavailable 0", []string{"roll", q, "--nodegroup", "blue", "--max-unavailable", "0"}},
		{"negative gate timeout", []string{"roll", q, "--nodegroup", "blue", "--gate-timeout", "-1s"}},
		{"no drain timeout", []string{"roll", q, "--nodegroup", "blue", "--drain-timeout", "0s"}},
		{"unknown order", []string{"roll", q, "--nodegroup", "blue", "--order", "random"}},
		{"soak without canary", []string{"roll", q, "--nodegroup", "blue", "--canary-soak", "15m"}},
		{"negative canary", []string{"roll", q, "--nodegroup", "blue", "--canary", "-1"}},
		{"no unreachable pod grace", []string{"roll", q, "--nodegroup", "blue", "--unreachable-pod-grace", "0s"}},
		{"no sample interval", []string{"roll", q, "--nodegroup", "blue", "--sample-interval", "0s"}},
		{"unknown provider", []string{"roll", q, "--nodegroup", "blue", "--provider", "gcp"}},
		{"policy file missing", []string{"roll", q, "--nodegroup", "blue", "--policy", "/nonexistent/policy.yaml"}},
		{"web config without a metrics address", []string{"roll", q, "--nodegroup", "blue", "--web.config.file", "/nonexistent/web.yml"}},
		{"health address without a metrics address", []string{"roll", q, "--nodegroup", "blue", "--web.health-address", "127.0.0.1:0"}},
		{"metrics web config missing", []string{"roll", q, "--nodegroup", "blue", "--metrics-address", "127.0.0.1:0", "--web.config.file", "/nonexistent/web.yml"}},
		{"metrics web config unknown field", []string{"roll", q, "--nodegroup", "blue", "--metrics-address", "127.0.0.1:0", "--web.config.file", writeFile(t, "web.yml", "basic_auth_userz: {}\n")}},
		{"metrics health address without a port", []string{"roll", q, "--nodegroup", "blue", "--metrics-address", "127.0.0.1:0", "--web.health-address", "health"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(tc.args); got != 2 {
				t.Errorf("exit status %d, want 2", got)
			}
		})
	}
}

// TestRollForceFlagsReachTheGate: pods the roll is told to evict anyway do
// not hold it at the gate's drain check; without the flags the policy
// stands as written.
func TestRollForceFlagsReachTheGate(t *testing.T) {
	p := gate.DefaultPolicy()
	acceptForced(false, false)(&p)
	if p.Drain.AllowLocalStoragePods || p.Drain.AllowUnmanagedPods {
		t.Errorf("no --force flag, yet the policy allows: %+v", p.Drain)
	}
	acceptForced(true, false)(&p)
	if !p.Drain.AllowLocalStoragePods || p.Drain.AllowUnmanagedPods {
		t.Errorf("--force-local-storage: %+v", p.Drain)
	}
	p = gate.DefaultPolicy()
	p.Drain.AllowUnmanagedPods = true
	acceptForced(false, false)(&p)
	if !p.Drain.AllowUnmanagedPods {
		t.Error("the policy's own allowance was dropped")
	}
}

// TestWriteReport: --report FILE.json writes the JSON there and the
// Markdown summary at FILE.md.
func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	r := &roll.DowntimeReport{Roll: "r1", Samples: 3, ZeroDowntime: true}
	if err := writeReport(filepath.Join(dir, "report.json"), r); err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil || !strings.Contains(string(j), `"zero_downtime": true`) {
		t.Errorf("report.json: %s %v", j, err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !strings.Contains(string(md), "**zero downtime") {
		t.Errorf("report.md: %s %v", md, err)
	}
	if err := writeReport(filepath.Join(dir, "missing", "report.json"), r); err == nil || !strings.Contains(err.Error(), "downtime report") {
		t.Errorf("writing into a missing directory: %v", err)
	}
}
