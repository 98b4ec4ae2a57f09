package roll

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoCollectorImports: the roll depends on internal/kube for the shared
// Kubernetes vocabulary (node labels, instance ids, endpoint counts), never
// on a collector package; dependencies point from the collectors and the
// commands down to internal/, not across.
func TestNoCollectorImports(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const collectors = "github.com/upgradeguard/upgradeguard/collectors"
	for _, p := range strings.Fields(string(out)) {
		if p == collectors || strings.HasPrefix(p, collectors+"/") {
			t.Errorf("internal/roll depends on %s; use internal/kube for what it needs", p)
		}
	}
}
