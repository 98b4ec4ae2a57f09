package preflight

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// ruleWhy says in short, per workloads rule, the upstream behaviour that
// makes the finding: the "why" of a report for the team owning the
// workload. The rules' doc comments (workloads.go) name the code.
var ruleWhy = map[string]string{
	RuleSingleReplicaService:  "a drain evicts the pod before its replacement runs: the ReplicaSet controller creates the replacement once the old pod is terminating (the StatefulSet controller only once it is gone), and the EndpointSlice controller takes a terminating pod out of the Service's ready endpoints",
	RuleOneNode:               "the scheduler keeps pods apart only on a required podAntiAffinity or a topologySpreadConstraint with whenUnsatisfiable DoNotSchedule; preferred anti-affinity and ScheduleAnyway only score nodes, so the pods (and their replacements) can end up on one node",
	RuleOneZone:               "nothing the scheduler enforces (a required podAntiAffinity or a DoNotSchedule topologySpreadConstraint on topology.kubernetes.io/zone) spreads the pods over zones, and a roll can take one zone's nodes together",
	RuleNoPDB:                 "the Eviction API evicts a pod that no PodDisruptionBudget selects without any check, so a roll step draining the nodes holding every ready pod evicts them all",
	RulePDBBlocks:             "the Eviction API refuses an eviction its PodDisruptionBudget does not allow (maxUnavailable 0, minAvailable 100% or at least the replicas never allow one), and refuses outright a pod that more than one PDB selects",
	RuleNoReadinessProbe:      "the kubelet calls a container without a readinessProbe or startupProbe ready as soon as it started, and the EndpointSlice controller then sends it the Service's traffic",
	RuleGraceOverDrainTimeout: "an eviction deletes the pod with its own terminationGracePeriodSeconds (30 when unset), the kubelet waits up to it, and the roll waits for the pod to be gone for at most its drain timeout",
	RulePreStopOverGrace:      "the kubelet runs a preStop hook for at most the grace period, then sends SIGTERM with only 2 seconds left before SIGKILL",
	RuleEmptyDir:              "an emptyDir volume lives as long as its pod; kubectl drain refuses such pods without --delete-emptydir-data, upgradeguard roll without --force-local-storage",
	RuleNoController:          "nothing re-creates a deleted pod that has no controller; kubectl drain refuses it without --force, upgradeguard roll without --force-unmanaged",
	RuleZonalVolume:           "the scheduler places a pod only on a node of its volume's zone (volume node affinity), and that zone's nodes are all in the node group being rolled",
}

// WriteMarkdownByNamespace writes the report as Markdown for the teams that
// own the namespaces: the summary line first; then a "Cluster" section with
// every finding that has no namespace (APIs, version skew, capacity, drains
// per node group, add-ons, what the workloads family read) as a table per
// severity, so nothing is lost; then a section per namespace (in name
// order) and in it, per workload (the most serious first, then by name),
// each finding in plain words: its severity and rule, what it found, what
// will happen to the workload during the upgrade (Effect), what to change
// (Fix, naming the field) and why (the rule's upstream behaviour).
func WriteMarkdownByNamespace(w io.Writer, r *Report) error {
	r.Sort()
	fmt.Fprintf(w, "# %s\n", r.summary())

	var cluster []Finding
	byNS := map[string][]Finding{}
	for _, f := range r.Findings {
		if f.Namespace == "" {
			cluster = append(cluster, f)
			continue
		}
		byNS[f.Namespace] = append(byNS[f.Namespace], f)
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)

	fmt.Fprintf(w, "\nWhat the upgrade to %s, which drains and replaces every node, will do to the workloads of each namespace, what to change and why; cluster-wide findings first.\n", r.Target)
	if len(namespaces) > 0 {
		fmt.Fprintln(w)
		for _, ns := range namespaces {
			fmt.Fprintf(w, "- `%s`: %s\n", ns, countWords(byNS[ns]))
		}
	}

	fmt.Fprintf(w, "\n## Cluster\n\n")
	if len(cluster) == 0 {
		fmt.Fprintln(w, "No cluster-wide findings.")
	} else {
		fmt.Fprintf(w, "Findings of no namespace (APIs, version skew, capacity, drains per node group, add-ons): %s.\n", countWords(cluster))
		for _, s := range severities {
			var rows []Finding
			for _, f := range cluster {
				if f.Severity == s {
					rows = append(rows, f)
				}
			}
			if len(rows) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n### %s (%d)\n\n| check | object | source | message |\n| --- | --- | --- | --- |\n", s, len(rows))
			for _, f := range rows {
				fmt.Fprintf(w, "| %s | %s | %s | %s |\n", mdCell(f.Check), mdCell(f.Object), mdCell(f.Source), mdCell(f.text()))
			}
		}
	}

	for _, ns := range namespaces {
		fmt.Fprintf(w, "\n## Namespace `%s`\n\n%s.\n", ns, capitalize(countWords(byNS[ns])))
		for _, g := range byWorkload(byNS[ns]) {
			fmt.Fprintf(w, "\n### %s (%s)\n", mdText(g.name), g.worst)
			for _, f := range g.findings {
				writeWorkloadFinding(w, f)
			}
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// writeWorkloadFinding writes one finding of a namespace section.
func writeWorkloadFinding(w io.Writer, f Finding) {
	head := "**" + string(f.Severity) + "**"
	if f.Rule != "" {
		head += " `" + f.Rule + "`"
	} else {
		head += " " + f.Check
	}
	fmt.Fprintf(w, "\n- %s: %s\n", head, mdText(withoutRule(f)))
	if f.Effect != "" {
		fmt.Fprintf(w, "  - During the upgrade: %s.\n", mdText(sentence(f.Effect)))
	}
	if f.Fix != "" {
		fmt.Fprintf(w, "  - What to change: %s.\n", mdText(sentence(f.Fix)))
	}
	if why := ruleWhy[f.Rule]; why != "" {
		fmt.Fprintf(w, "  - Why: %s.\n", mdText(sentence(why)))
	}
}

// workloadGroup is the findings of one workload of a namespace.
type workloadGroup struct {
	name     string
	worst    Severity
	findings []Finding
}

// byWorkload groups a namespace's findings by workload (the finding's
// Object when it names none): the most serious workload first, then by
// name; in each, findings by severity, then in the order of WorkloadRules,
// then by message.
func byWorkload(fs []Finding) []workloadGroup {
	idx := map[string]int{}
	var gs []workloadGroup
	for _, f := range fs {
		name := f.Workload
		if name == "" {
			name = f.Object
		}
		i, ok := idx[name]
		if !ok {
			i = len(gs)
			idx[name] = i
			gs = append(gs, workloadGroup{name: name, worst: f.Severity})
		}
		g := &gs[i]
		g.findings = append(g.findings, f)
		if f.Severity.rank() < g.worst.rank() {
			g.worst = f.Severity
		}
	}
	ruleRank := func(rule string) int {
		if i := slices.Index(WorkloadRules, rule); i >= 0 {
			return i
		}
		return len(WorkloadRules)
	}
	for _, g := range gs {
		sort.SliceStable(g.findings, func(i, j int) bool {
			a, b := g.findings[i], g.findings[j]
			if a.Severity.rank() != b.Severity.rank() {
				return a.Severity.rank() < b.Severity.rank()
			}
			if ruleRank(a.Rule) != ruleRank(b.Rule) {
				return ruleRank(a.Rule) < ruleRank(b.Rule)
			}
			return a.Message < b.Message
		})
	}
	sort.SliceStable(gs, func(i, j int) bool {
		if gs[i].worst.rank() != gs[j].worst.rank() {
			return gs[i].worst.rank() < gs[j].worst.rank()
		}
		return gs[i].name < gs[j].name
	})
	return gs
}

// countWords counts findings per severity in words: "1 blocker, 2
// warnings".
func countWords(fs []Finding) string {
	var parts []string
	for _, s := range severities {
		n := 0
		for _, f := range fs {
			if f.Severity == s {
				n++
			}
		}
		if n == 0 {
			continue
		}
		word := string(s)
		if n > 1 && s != Info && s != Unknown {
			word += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, word))
	}
	if len(parts) == 0 {
		return "no findings"
	}
	return strings.Join(parts, ", ")
}

// withoutRule is the finding's message without a leading "rule: ".
func withoutRule(f Finding) string {
	if f.Rule != "" {
		if rest, ok := strings.CutPrefix(f.Message, f.Rule+": "); ok {
			return rest
		}
	}
	return f.Message
}

// sentence is s without a final period (the writer adds one); not
// capitalized, since a fix may begin with a field name.
func sentence(s string) string {
	return strings.TrimSuffix(strings.TrimSpace(s), ".")
}

// capitalize upper-cases an ASCII first letter.
func capitalize(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// mdText is s on one line, safe as Markdown text: no raw HTML.
func mdText(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(oneLine(s))
}
