package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPreflightUsage: bad flags or input paths exit with 2 before any
// cluster or monitoring is asked.
func TestPreflightUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no target", []string{"preflight", "--no-cluster"}, ""}, // kingpin's own message
		{"bad target", []string{"preflight", "--target-version", "latest", "--no-cluster"}, "latest"},
		{"missing manifest", []string{"preflight", "--target-version", "1.37", "--no-cluster", "-f", "/nonexistent/app.yaml"}, "/nonexistent/app.yaml"},
		{"unknown check", []string{"preflight", "--target-version", "1.37", "--no-cluster", "--check", "nothing"}, "nothing"},
		{"bad window", []string{"preflight", "--target-version", "1.37", "--no-cluster", "--apis.window", "0s"}, "apis.window"},
		{"eks without region", []string{"preflight", "--target-version", "1.37", "--no-cluster", "--eks"}, "--aws.region"},
		{"bad header", []string{"preflight", "--target-version", "1.37", "--no-cluster", "--query.url", "http://127.0.0.1:1", "--header", "nocolon"}, "nocolon"},
		{"by without markdown", []string{"preflight", "--target-version", "1.37", "--no-cluster", "--by", "namespace"}, "--by namespace needs -o markdown"},
		{"by with json", []string{"preflight", "--target-version", "1.37", "--no-cluster", "--by", "namespace", "-o", "json"}, "--output is json"},
		{"by unknown", []string{"preflight", "--target-version", "1.37", "--no-cluster", "-o", "markdown", "--by", "team"}, ""}, // kingpin's own message
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runGate(t, tc.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not name %q", errOut, tc.want)
			}
		})
	}
}

// TestPreflightExitCodes: manifests only, no cluster: a removed API exits
// 1, a deprecated one with its removal announced 4, one without (v1
// Endpoints) and a clean file 0; a family that could not run
// (the Helm releases without a cluster) is unknown, 3.
func TestPreflightExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	removed := write("removed.yaml", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: web}\n")
	// Deprecated with a removal announced (1.38): a warning at 1.37. v1
	// Endpoints (deprecated, no removal announced) is info and exits 0.
	deprecated := write("deprecated.yaml", "apiVersion: storagemigration.k8s.io/v1beta1\nkind: StorageVersionMigration\nmetadata: {name: m}\n")
	noRemoval := write("noremoval.yaml", "apiVersion: v1\nkind: Endpoints\nmetadata: {name: legacy}\n")
	clean := write("clean.json", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api"}}`)
	src := []string{"preflight", "--target-version", "1.37", "--no-cluster", "--check", "apis-by-source"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"removed", append(src, "-f", removed), 1, "BLOCKER (1)"},
		{"deprecated", append(src, "-f", deprecated), 4, "WARNING (1)"},
		{"deprecated, no removal announced", append(src, "-f", noRemoval), 0, "v1 Endpoints is deprecated since 1.33, no removal announced"},
		{"clean", append(src, "-f", clean), 0, "clean"},
		{"no cluster, no manifests", src, 3, "not checked: no cluster"},
		{"all families, no sources", []string{"preflight", "--target-version", "1.37", "--no-cluster"}, 3, "no --query.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := runGate(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
		})
	}
	// JSON output carries the exit code and the findings.
	code, out, _ := runGate(t, append(src, "-f", removed, "-o", "json")...)
	var doc struct {
		ExitCode int `json:"exit_code"`
		Findings []struct {
			Severity, Object, Replacement string
			RemovedRelease                string `json:"removed_release"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if code != 1 || doc.ExitCode != 1 || doc.Findings[0].Severity != "blocker" || doc.Findings[0].RemovedRelease != "1.25" || doc.Findings[0].Replacement != "policy/v1 PodDisruptionBudget" {
		t.Errorf("exit %d, JSON %+v", code, doc)
	}
	code, out, _ = runGate(t, append(src, "-f", removed, "-o", "markdown")...)
	if code != 1 || !strings.Contains(out, "## blocker (1)") || !strings.Contains(out, "| apis-by-source | policy/v1beta1 PodDisruptionBudget web |") {
		t.Errorf("markdown, exit %d:\n%s", code, out)
	}
}

// TestPreflightPolicy: a bad --policy is a usage error naming the file and
// the line; a good one is read, and the workloads family without a cluster
// is unknown.
func TestPreflightPolicy(t *testing.T) {
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(bad, []byte("workloads:\n  severity:\n    no-pdb: fatal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("workloads:\n  drain_timeout: 20m\n  severity:\n    no-pdb: info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runGate(t, "preflight", "--target-version", "1.37", "--no-cluster", "--policy", bad)
	if code != 2 || !strings.Contains(errOut, bad) || !strings.Contains(errOut, "line 3") {
		t.Errorf("bad policy: exit %d, stderr %q", code, errOut)
	}
	code, out, _ := runGate(t, "preflight", "--target-version", "1.37", "--no-cluster", "--policy", good, "--check", "workloads")
	if code != 3 || !strings.Contains(out, "workloads") || !strings.Contains(out, "not checked: no cluster") {
		t.Errorf("good policy: exit %d, output:\n%s", code, out)
	}
}

// TestPreflightByNamespace: -o markdown --by namespace writes the summary
// first and the findings without a namespace in the Cluster section.
func TestPreflightByNamespace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "removed.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: web}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runGate(t, "preflight", "--target-version", "1.37", "--no-cluster", "--check", "apis-by-source", "-f", p, "-o", "markdown", "--by", "namespace")
	if code != 1 || !strings.HasPrefix(out, "# preflight for 1.37: BLOCKED") || !strings.Contains(out, "\n## Cluster\n") || !strings.Contains(out, "| apis-by-source | policy/v1beta1 PodDisruptionBudget web |") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}
