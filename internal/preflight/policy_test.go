package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`workloads:
  drain_timeout: 20m
  max_unavailable: 3
  exclude_namespaces: [kube-system, monitoring]
  severity:
    no-readiness-probe: info
    emptydir: off
    pdb-blocks: blocker
`))
	if err != nil {
		t.Fatal(err)
	}
	w := p.Workloads
	if w.drainTimeout() != 20*time.Minute || w.maxUnavailable() != 3 || len(w.ExcludeNamespaces) != 2 ||
		w.severity(RuleNoReadinessProbe) != Info || w.severity(RuleEmptyDir) != Off || w.severity(RulePDBBlocks) != Blocker || w.severity(RuleNoPDB) != Warning {
		t.Errorf("policy %+v", w)
	}
	// Empty: the defaults, the roll's.
	p, err = ParsePolicy(nil)
	if err != nil || p.Workloads.drainTimeout() != 15*time.Minute || p.Workloads.maxUnavailable() != 1 || p.Workloads.severity(RuleOneNode) != Warning {
		t.Errorf("empty policy %+v, %v", p, err)
	}
}

// TestParsePolicyErrors: strict, each error naming its line.
func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown top field", "workload:\n  drain_timeout: 1m\n", `line 1: unknown field "workload" in the top level`},
		{"unknown field", "workloads:\n  drain_timeout: 1m\n  max_unavailble: 2\n", `line 3: unknown field "max_unavailble" in workloads (known fields: drain_timeout, max_unavailable, exclude_namespaces, severity)`},
		{"bad duration", "workloads:\n  drain_timeout: soon\n", `line 2: bad duration "soon"`},
		{"negative duration", "workloads:\n  drain_timeout: -1m\n", `line 2: bad duration "-1m"`},
		{"zero max", "workloads:\n  max_unavailable: 0\n", `line 2: "0": want an integer of at least 1`},
		{"unknown rule", "workloads:\n  severity:\n    no-readiness: info\n", `line 3: unknown rule "no-readiness" in workloads.severity`},
		{"bad severity", "workloads:\n  severity:\n    no-pdb: fatal\n", `line 3: severity "fatal" of no-pdb: want blocker, warning, info or off`},
		{"unknown severity is not settable", "workloads:\n  severity:\n    no-pdb: unknown\n", `line 3: severity "unknown"`},
		{"not a mapping", "workloads:\n  severity: [no-pdb]\n", "line 2: want a mapping"},
		{"two documents", "workloads: {}\n---\nworkloads: {}\n", "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "preflight.yaml")
	if err := os.WriteFile(path, []byte("workloads:\n  bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v", err)
	}
	if _, err := LoadPolicy(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file is no error")
	}
}
