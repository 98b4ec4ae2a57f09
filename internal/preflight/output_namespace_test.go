package preflight

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// byNamespaceReport is a report as a run against a cluster could give:
// workloads findings of two namespaces (one of them blocked by a PDB), the
// workloads family's own info, and cluster-wide findings of other families.
func byNamespaceReport() *Report {
	wl := func(sev Severity, rule, ns, kind, name, msg, effect, fix string) Finding {
		return Finding{Check: FamilyWorkloads, Severity: sev, Rule: rule, Object: kind + " " + ns + "/" + name, Source: "cluster",
			Namespace: ns, Workload: kind + "/" + name, Message: msg, Effect: effect, Fix: fix}
	}
	return &Report{Target: Version{1, 37}, Findings: []Finding{
		wl(Warning, RuleSingleReplicaService, "shop", "Deployment", "web", "1 replica behind Service web",
			"while its node drains the Service has no ready endpoint: the pod is evicted, and its replacement serves only once scheduled on another node and ready",
			"spec.replicas: 2 or more, spread over nodes, with a PodDisruptionBudget (spec.maxUnavailable: 1)"),
		wl(Warning, RuleNoReadinessProbe, "shop", "Deployment", "web", "behind Service web; container app has no readinessProbe",
			"each replacement pod gets Service traffic as soon as its containers start, before it serves: requests fail during every drain",
			"spec.template.spec.containers[name=app].readinessProbe"),
		// An older message still carrying its rule in front: not said twice.
		wl(Warning, RuleEmptyDir, "shop", "Deployment", "cache", "emptydir: emptyDir volume scratch",
			"upgradeguard roll (as kubectl drain) refuses to drain its node without --force-local-storage; with it, the data in those volumes is deleted with the pod",
			"spec.template.spec.volumes[name=scratch]: a PersistentVolumeClaim (a StatefulSet's volumeClaimTemplates) if the data must survive; else accept its loss with roll --force-local-storage"),
		wl(Blocker, RulePDBBlocks, "payments", "StatefulSet", "ledger", "PDB ledger (maxUnavailable 0, 3 expected pods) never allows an eviction",
			"every eviction of its pods is refused: upgradeguard roll reads the PDB as unsatisfiable and gives up the drain of the first node holding one (at the latest after --drain-timeout 15m0s), uncordons the node and stops; kubectl drain retries until its own timeout",
			"PDB ledger: spec.maxUnavailable: 1 (or spec.minAvailable below spec.replicas 3)"),
		wl(Warning, RuleGraceOverDrainTimeout, "payments", "StatefulSet", "ledger", "terminationGracePeriodSeconds 1800 (30m0s) is longer than the roll's drain timeout 15m0s",
			"an evicted pod may take its whole grace period to stop, and the drain waits for it: the drain of its node can time out, and the roll then uncordons the node and stops",
			"spec.template.spec.terminationGracePeriodSeconds: 900 or less, or a longer roll --drain-timeout (policy workloads.drain_timeout)"),
		wl(Info, RuleNoController, "payments", "Pod", "debug", "a pod without a controller (metadata.ownerReferences)",
			"upgradeguard roll (as kubectl drain) refuses to drain its node without --force-unmanaged; with it, the pod is deleted for good: nothing re-creates it",
			"run it from a Deployment or a StatefulSet (spec.template holding this pod's spec)"),
		{Check: FamilyWorkloads, Severity: Info, Object: "workloads", Source: "cluster",
			Message: "judged 4 workloads (7 pods a drain evicts) on 3 nodes, with 1 Services and 1 PDBs; roll drain timeout 15m0s, max-unavailable 1"},
		{Check: FamilyAPIsByUse, Severity: Blocker, Object: "flowcontrol.apiserver.k8s.io/v1beta3 flowschemas", Source: "query API",
			Message: "still requested, removed in 1.32 (target 1.37): find the clients (audit log, user agents) and move them", RemovedRelease: "1.32", Replacement: "flowcontrol.apiserver.k8s.io/v1 FlowSchema"},
		{Check: FamilySkew, Severity: Info, Object: "node group g1", Source: "cluster", NodeGroup: "g1",
			Message: "kubelets v1.36 within the skew of 1.37: roll after the control plane"},
		{Check: FamilyDrain, Severity: Warning, Object: "node group g1", Source: "cluster", NodeGroup: "g1",
			Message: "1 pod with emptyDir volumes (payments/debug): a drain loses their data"},
	}}
}

// TestWriteMarkdownByNamespace: the rendered report is the golden file
// (go test -run TestWriteMarkdownByNamespace -update rewrites it).
func TestWriteMarkdownByNamespace(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdownByNamespace(&b, byNamespaceReport()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "by-namespace.golden.md")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -run TestWriteMarkdownByNamespace -update writes it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it):\n%s", golden, got)
	}
}

// TestWriteMarkdownByNamespaceLayout: the summary first, the cluster
// section before the namespaces, namespaces in name order, the most
// serious workload first, every finding's words, effect and fix once; the
// order of the input does not matter.
func TestWriteMarkdownByNamespaceLayout(t *testing.T) {
	r := byNamespaceReport()
	var b bytes.Buffer
	if err := WriteMarkdownByNamespace(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if first, _, _ := strings.Cut(out, "\n"); first != "# "+r.summary() {
		t.Errorf("first line %q, want the summary %q", first, r.summary())
	}
	order := []string{"## Cluster", "### blocker (1)", "flowcontrol.apiserver.k8s.io/v1beta3", "### warning (1)", "### info (2)",
		"## Namespace `payments`", "### StatefulSet/ledger (blocker)", "`pdb-blocks`", "`grace-over-drain-timeout`", "### Pod/debug (info)",
		"## Namespace `shop`", "### Deployment/cache (warning)", "### Deployment/web (warning)", "`single-replica-service`", "`no-readiness-probe`"}
	at := 0
	for _, s := range order {
		i := strings.Index(out[at:], s)
		if i < 0 {
			t.Fatalf("%q missing or out of order after byte %d:\n%s", s, at, out)
		}
		at += i + len(s)
	}
	for _, f := range r.Findings {
		for _, s := range []string{withoutRule(f), f.Effect, f.Fix} {
			if s != "" && strings.Count(out, s) != 1 {
				t.Errorf("%q appears %d times, want once", s, strings.Count(out, s))
			}
		}
		if why := ruleWhy[f.Rule]; f.Rule != "" && !strings.Contains(out, why) {
			t.Errorf("rule %s: why %q missing", f.Rule, why)
		}
	}
	if strings.Contains(out, "emptydir: emptyDir") {
		t.Errorf("rule said twice:\n%s", out)
	}
	for i := 0; i < 5; i++ {
		s := byNamespaceReport()
		rand.Shuffle(len(s.Findings), func(i, j int) { s.Findings[i], s.Findings[j] = s.Findings[j], s.Findings[i] })
		var b2 bytes.Buffer
		if err := WriteMarkdownByNamespace(&b2, s); err != nil {
			t.Fatal(err)
		}
		if b2.String() != out {
			t.Fatalf("shuffled input gives another output:\n%s", b2.String())
		}
	}
}

// TestWriteMarkdownByNamespaceClusterOnly: a report with no namespaced
// finding (or none at all) still has its summary and Cluster section.
func TestWriteMarkdownByNamespaceClusterOnly(t *testing.T) {
	for _, r := range []*Report{
		{Target: Version{1, 37}},
		{Target: Version{1, 37}, Findings: []Finding{{Check: FamilySkew, Severity: Blocker, Object: "control plane", Source: "cluster", Message: "1.35 to 1.37 skips a minor release"}}},
	} {
		var b bytes.Buffer
		if err := WriteMarkdownByNamespace(&b, r); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.HasPrefix(out, "# "+r.summary()+"\n") || !strings.Contains(out, "\n## Cluster\n") || strings.Contains(out, "## Namespace") {
			t.Errorf("%+v:\n%s", r.Findings, out)
		}
		for _, f := range r.Findings {
			if !strings.Contains(out, f.Message) {
				t.Errorf("%q lost:\n%s", f.Message, out)
			}
		}
		if len(r.Findings) == 0 && !strings.Contains(out, "No cluster-wide findings.") {
			t.Errorf("empty report:\n%s", out)
		}
	}
}

// TestRuleWhy: every workloads rule has its why.
func TestRuleWhy(t *testing.T) {
	for _, r := range WorkloadRules {
		if ruleWhy[r] == "" {
			t.Errorf("rule %s has no why", r)
		}
	}
	if len(ruleWhy) != len(WorkloadRules) {
		t.Errorf("ruleWhy has %d rules, WorkloadRules %d", len(ruleWhy), len(WorkloadRules))
	}
}

// TestFindingText: the table's and markdown's message carries the rule,
// the effect and the fix of a workloads finding once, and says nothing
// more for a finding without them.
func TestFindingText(t *testing.T) {
	f := Finding{Rule: RuleNoPDB, Message: "no PodDisruptionBudget selects its pods", Effect: "one roll step evicts every ready pod", Fix: "add a PodDisruptionBudget."}
	want := "no-pdb: no PodDisruptionBudget selects its pods. During the upgrade: one roll step evicts every ready pod. Fix: add a PodDisruptionBudget"
	if got := f.text(); got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	f.Message = "no-pdb: no PodDisruptionBudget selects its pods"
	if got := f.text(); got != want {
		t.Errorf("prefixed message: text %q, want %q", got, want)
	}
	f = Finding{Rule: RuleEmptyDir, Message: "emptyDir volume x: add a PodDisruptionBudget", Fix: "add a PodDisruptionBudget"}
	if got := f.text(); got != "emptydir: emptyDir volume x: add a PodDisruptionBudget" {
		t.Errorf("fix said in the message: text %q", got)
	}
	f = Finding{Message: "v1 Endpoints is deprecated since 1.33, no removal announced", Replacement: "discovery.k8s.io/v1 EndpointSlice"}
	if got := f.text(); got != "v1 Endpoints is deprecated since 1.33, no removal announced; use discovery.k8s.io/v1 EndpointSlice" {
		t.Errorf("API finding: text %q", got)
	}
}

// Markdown by namespace with findings of the same workload name in two
// kinds, and a -f path holding "<d>", which the Cluster table wrote as raw
// HTML.
func TestMarkdownByNamespaceEscapesAndOrder(t *testing.T) {
	a := healthy("web")
	a.pdb = nil
	a.nodes = []string{"n1", "n1"}
	b := app{ns: "shop", name: "web", kind: "StatefulSet", nodes: []string{"n2", "n2"}, pod: func(i int, p *corev1.Pod) { p.Name = "sts-" + p.Name }}
	fs := runWorkloads(t, []app{a, b})
	r := &Report{Target: Version{1, 38}, Findings: append(fs, Finding{Check: FamilyAPIsBySource, Severity: Blocker, Object: "x", Source: "dir/a|b `c` <d> *e*.yaml", Message: "m"})}
	var out1, out2 bytes.Buffer
	if err := WriteMarkdownByNamespace(&out1, r); err != nil {
		t.Fatal(err)
	}
	// shuffle
	for i, j := 0, len(r.Findings)-1; i < j; i, j = i+1, j-1 {
		r.Findings[i], r.Findings[j] = r.Findings[j], r.Findings[i]
	}
	if err := WriteMarkdownByNamespace(&out2, r); err != nil {
		t.Fatal(err)
	}
	t.Log(out1.String())
	if strings.Contains(out1.String(), "<d>") {
		t.Errorf("Cluster table cell carries raw HTML <d> from a -f path (mdCell does not escape <, mdText does)")
	}
	if out1.String() != out2.String() {
		t.Errorf("order depends on input order")
	}
	n := 0
	for _, f := range fs {
		if f.Namespace != "" {
			n++
		}
	}
	if c := strings.Count(out1.String(), "\n- **"); c != n {
		t.Errorf("%d namespace findings, %d written", n, c)
	}
}
