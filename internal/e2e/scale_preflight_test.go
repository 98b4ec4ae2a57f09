//go:build scale

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/preflight"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// preflightWorkloads runs `upgradeguard preflight --check workloads` once
// against the filled scenario (its Deployments, ReplicaSets, pods, PDBs and
// nodes, read through the real API server) and prints its wall time, CPU
// time, peak resident memory and its findings by rule. The timings are
// reported, never asserted; the run must end with a report (exit 0 or 4),
// never unknown.
func preflightWorkloads(t *testing.T, ctx context.Context, tb *testbed.Testbed, bin string, sc scenario) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, "preflight", "--target-version", "1.37", "--kubeconfig", tb.Kubeconfig,
		"--check", preflight.FamilyWorkloads, "-o", "json", "--log.level", "warn")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	wall := time.Since(began)
	var ee *exec.ExitError
	if errors.As(err, &ee) && (ee.ExitCode() == preflight.ExitClean || ee.ExitCode() == preflight.ExitWarnings) {
		err = nil
	}
	if err != nil {
		t.Fatalf("preflight --check workloads: %v\n%s", err, stderr.String())
	}
	var out struct {
		Counts   map[string]int `json:"counts"`
		Findings []struct {
			Rule, Severity, Message string
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
		t.Fatalf("preflight output: %v\n%s", err, stdout.String())
	}
	byRule := map[string]int{}
	summary := ""
	for _, f := range out.Findings {
		if f.Rule == "" {
			summary = f.Message
			continue
		}
		byRule[f.Rule]++
	}
	rules := make([]string, 0, len(byRule))
	for r, n := range byRule {
		rules = append(rules, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(rules)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Printf("scale %s: preflight --check workloads in %s (user %s, system %s, max RSS %.1f MiB, load %s): %s; findings by rule: %s\n",
		sc, wall.Round(10*time.Millisecond), cmd.ProcessState.UserTime().Round(10*time.Millisecond), cmd.ProcessState.SystemTime().Round(10*time.Millisecond),
		float64(ru.Maxrss)/1024, loadAvg(), summary, strings.Join(rules, ", "))
	if out.Counts["unknown"] > 0 {
		t.Errorf("preflight --check workloads: %d unknown findings:\n%s", out.Counts["unknown"], stdout.String())
	}
}
