package main

import "testing"

// TestHoldUsage: a hold that cannot be what the operator meant never
// starts: bad usage exits with 2 before any API is called.
func TestHoldUsage(t *testing.T) {
	q := "--query.url=http://127.0.0.1:1"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no query URL", []string{"gate", "hold"}},
		{"a single node", []string{"gate", "hold", q, "--node", "ip-10-0-0-1"}},
		{"negative stop-after", []string{"gate", "hold", q, "--stop-after", "-1s"}},
		{"bad NodePool selector", []string{"gate", "hold", q, "--karpenter.nodepool-selector", "a b"}},
		{"bad node selector", []string{"gate", "hold", q, "--autoscaler.scale-down-disabled", "--autoscaler.node-selector", "!!"}},
		{"node selector without the autoscaler target", []string{"gate", "hold", q, "--autoscaler.node-selector", "a=b"}},
		{"instance refresh without a region", []string{"gate", "hold", q, "--aws.instance-refresh-group", "nodes"}},
		{"policy file missing", []string{"gate", "hold", q, "--policy", "/nonexistent/policy.yaml"}},
		{"web config missing", []string{"gate", "hold", q, "--web.config.file", "/nonexistent/web.yml"}},
		{"health address without a port", []string{"gate", "hold", q, "--web.health-address", "health"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_REGION", "")
			if got := run(tc.args); got != 2 {
				t.Errorf("exit status %d, want 2", got)
			}
		})
	}
}
