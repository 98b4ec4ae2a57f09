package main

import (
	"testing"

	"github.com/upgradeguard/upgradeguard/internal/preflight"
)

// TestUsageExitCode: every command's usage error exits 2, the gate's
// exitUsage and preflight's documented ExitUsage alike.
func TestUsageExitCode(t *testing.T) {
	if exitUsage != preflight.ExitUsage {
		t.Fatalf("exitUsage %d, preflight.ExitUsage %d: one usage error exits with both", exitUsage, preflight.ExitUsage)
	}
	var e ExitCoder = &usageError{"x"}
	if e.ExitCode() != 2 || e.Error() != "x" {
		t.Errorf("usageError: exit %d, message %q", e.ExitCode(), e.Error())
	}
}
