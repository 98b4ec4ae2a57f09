package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/preflight"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestPreflightCapacityThroughThanos: the exporter's AWS collectors against
// the fake AWS account, scraped by the testbed's Prometheus; preflight's
// capacity family, through Thanos Query, finds the zone whose subnet is too
// small for a surge node and passes the one with room and the quotas.
func TestPreflightCapacityThroughThanos(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	aws, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = aws.Close() })
	acct := aws.Account()
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	// eu-west-1a: a /28 (11 usable addresses, fewer than an m5.large surge
	// node takes at start); eu-west-1b: a /24.
	var subnets []string
	for _, s := range []awsfake.SubnetSpec{{CIDR: "10.1.0.0/28", AZ: "eu-west-1a", Tags: tags}, {CIDR: "10.1.1.0/24", AZ: "eu-west-1b", Tags: tags}} {
		sub, err := acct.AddSubnet(s)
		if err != nil {
			t.Fatal(err)
		}
		subnets = append(subnets, sub.ID)
	}
	backed := tb.BackInstances(ctx, acct, nil)
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.AddASG(awsfake.ASGSpec{Name: "nodes", LaunchTemplate: lt.ID, Min: 2, Max: 4, Desired: 2, Subnets: subnets, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}
	startExporter(t, tb, bin, aws.URL())

	type finding struct {
		Check, Severity, Object, Source, Message string
	}
	var out struct {
		ExitCode int       `json:"exit_code"`
		Findings []finding `json:"findings"`
	}
	var text string
	deadline := time.Now().Add(4 * time.Minute)
	for {
		cmd := exec.CommandContext(ctx, bin, "preflight", "--target-version", "1.37", "--no-cluster",
			"--query.url", tb.ThanosQueryURL, "--query.matchers", `cluster="testbed"`, "--check", "capacity", "-o", "json", "--log.level", "warn")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ee := (*exec.ExitError)(nil); err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		text = stdout.String() + stderr.String()
		out.Findings = nil
		if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		unknown := false
		for _, f := range out.Findings {
			unknown = unknown || f.Severity == "unknown"
		}
		if !unknown {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exporter's AWS metrics never reached preflight; last output:\n%s", text)
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("preflight output:\n%s", text)
	by := map[string]finding{}
	for _, f := range out.Findings {
		by[f.Severity+" "+f.Object] = f
	}
	if f, ok := by["blocker zone eu-west-1a"]; !ok || !strings.Contains(f.Message, "a surge node takes") {
		t.Errorf("zone a: %+v, %v", f, ok)
	}
	if _, ok := by["info zone eu-west-1b"]; !ok {
		t.Errorf("zone b has room:\n%s", text)
	}
	if f, ok := by["info AWS quotas"]; !ok || strings.HasPrefix(f.Message, "0 ") {
		t.Errorf("quotas: %+v, %v", f, ok)
	}
	if out.ExitCode != preflight.ExitBlockers {
		t.Errorf("exit code %d, want %d", out.ExitCode, preflight.ExitBlockers)
	}

	// Without a query URL: the exporter's collectors run once inside
	// preflight, asking the fake AWS account directly.
	cmd := exec.CommandContext(ctx, bin, "preflight", "--target-version", "1.37", "--kubeconfig", tb.Kubeconfig,
		"--aws.region", "eu-west-1", "--aws.endpoint-url", aws.URL(), "--aws.cluster-name", "testbed",
		"--check", "capacity", "-o", "json", "--log.level", "warn")
	cmd.Env = append(cmd.Environ(), "AWS_ACCESS_KEY_ID="+awsfake.AccessKeyFor(awsfake.DefaultAccountID), "AWS_SECRET_ACCESS_KEY="+awsfake.SecretKey, "AWS_EC2_METADATA_DISABLED=true")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && !errors.As(err, new(*exec.ExitError)) {
		t.Fatal(err)
	}
	t.Logf("preflight without a query URL:\n%s%s", stdout.String(), stderr.String())
	out.Findings = nil
	if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	local := map[string]finding{}
	for _, f := range out.Findings {
		local[f.Severity+" "+f.Object] = f
	}
	if f, ok := local["blocker zone eu-west-1a"]; !ok || !strings.Contains(f.Source, "(AWS)") || f.Message != by["blocker zone eu-west-1a"].Message {
		t.Errorf("zone a from AWS directly: %+v, %v; through Thanos: %+v", f, ok, by["blocker zone eu-west-1a"])
	}
	if f, ok := local["info AWS quotas"]; !ok || f.Message != by["info AWS quotas"].Message {
		t.Errorf("quotas from AWS directly: %+v, %v; through Thanos: %+v", f, ok, by["info AWS quotas"])
	}
	if out.ExitCode != preflight.ExitBlockers {
		t.Errorf("exit code %d, want %d", out.ExitCode, preflight.ExitBlockers)
	}
}
