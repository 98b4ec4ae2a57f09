package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/preflight"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestPreflightVanillaControlPlaneIsClean: a 1.37 control plane with nothing
// else running (the testbed's kube-apiserver with its endpoint reconciler on,
// as in every real cluster, and kube-controller-manager, scraped by its
// Prometheus) requests v1 Endpoints itself: the endpoint reconciler GETs
// default/kubernetes every 10 s. v1 Endpoints is deprecated
// since 1.33 with no removal announced. `preflight --check apis-by-use`
// exited 4 with a warning no user could clear; it must exit 0,
// with an info finding that says the control plane makes such requests.
func TestPreflightVanillaControlPlaneIsClean(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, EndpointReconciler: true})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := tb.ScrapeAPIServer("apiserver_request_total", "apiserver_requested_deprecated_apis"); err != nil {
		t.Fatal(err)
	}
	type finding struct {
		Check, Severity, Object, Message string
	}
	var out struct {
		ExitCode int       `json:"exit_code"`
		Findings []finding `json:"findings"`
	}
	run := func() (int, string) {
		cmd := exec.CommandContext(ctx, bin, "preflight", "--target-version", "1.37", "--kubeconfig", tb.Kubeconfig,
			"--query.url", tb.ThanosQueryURL, "--query.matchers", `cluster="testbed"`, "--apis.window", "5m",
			"--check", preflight.FamilyAPIsByUse, "-o", "json", "--log.level", "warn")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code, err = ee.ExitCode(), nil
		}
		if err != nil {
			t.Fatalf("preflight: %v\n%s", err, stderr.String())
		}
		out.Findings = nil
		if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
			t.Fatalf("preflight output: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		return code, stdout.String() + stderr.String()
	}
	// Until Prometheus has two samples of the requests, nothing is seen.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		code, text := run()
		var endpoints *finding
		for i, f := range out.Findings {
			if f.Object == "v1 endpoints" {
				endpoints = &out.Findings[i]
			}
		}
		if endpoints != nil {
			t.Logf("preflight output:\n%s", text)
			if endpoints.Severity != string(preflight.Info) || !strings.Contains(endpoints.Message, "no removal announced") ||
				!strings.Contains(endpoints.Message, "control plane requests it itself") {
				t.Errorf("v1 endpoints: %+v", *endpoints)
			}
			for _, f := range out.Findings {
				if f.Severity != string(preflight.Info) {
					t.Errorf("a vanilla control plane gives %s: %+v", f.Severity, f)
				}
			}
			if code != preflight.ExitClean || out.ExitCode != preflight.ExitClean {
				t.Errorf("exit %d (JSON %d), want %d", code, out.ExitCode, preflight.ExitClean)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control plane's own v1 endpoints requests were never seen; last output (exit %d):\n%s", code, text)
		}
		time.Sleep(5 * time.Second)
	}
}
