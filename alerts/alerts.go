// Package alerts builds upgradeguard's alerting and recording rules: a
// prometheus-operator PrometheusRule, and the same groups as a plain
// Prometheus rule file. The alerts follow the monitoring mixins' conventions
// (CamelCase names with a shared prefix, severity critical|warning|info, a
// static summary, a templated description, a runbook per alert in
// docs/runbooks.md); the recording rules (upgradeguard:...) hold the ratios
// and headroom the dashboards and the upgrade gate read.
//
// Output is deterministic: groups sorted by name, recording rules in the
// order they depend on each other, alerts sorted by name and severity.
package alerts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Options select the series the rules read and name the PrometheusRule.
type Options struct {
	// ExporterJob, AWSNodeJob and KubeStateMetricsJob are the job labels of
	// the upgradeguard exporter, the aws-node pods (the VPC CNI's ipamd
	// metrics) and kube-state-metrics.
	ExporterJob, AWSNodeJob, KubeStateMetricsJob string
	// ClusterLabel names the cluster; aggregations keep it, so that the
	// rules also work in a Thanos Ruler or a Prometheus over many clusters.
	ClusterLabel string
	// Namespace, Name and Labels are the PrometheusRule's metadata. Labels
	// must match the ruleSelector of the Prometheus resource (e.g. release:
	// kube-prometheus-stack).
	Namespace, Name string
	Labels          map[string]string
	// RunbookBaseURL is where docs/runbooks.md is published; each alert's
	// runbook_url is RunbookBaseURL#<alertname lower-cased>.
	RunbookBaseURL string
	// APIServerJob is the job label of the Kubernetes API servers' targets
	// (kube-prometheus-stack's apiserver ServiceMonitor).
	APIServerJob string
	// RemovedAPIRelease is the release ("1.N") the cluster is upgraded to
	// next: UpgradeGuardRemovedAPIInUse fires for versions it (or an earlier
	// release) removes.
	RemovedAPIRelease string
	// For overrides the `for` duration of alerts by alert name (all the
	// severities of that name). A name that is no alert is an error.
	For map[string]time.Duration
}

// DefaultRunbookBaseURL is docs/runbooks.md in the project's repository.
const DefaultRunbookBaseURL = "https://github.com/upgradeguard/upgradeguard/blob/main/docs/runbooks.md"

// DefaultOptions are the selectors of a kube-prometheus-stack install with
// upgradeguard's deploy bundle.
func DefaultOptions() Options {
	return Options{
		ExporterJob:         "upgradeguard",
		AWSNodeJob:          "aws-node",
		KubeStateMetricsJob: "kube-state-metrics",
		APIServerJob:        "apiserver",
		RemovedAPIRelease:   DefaultRemovedAPIRelease,
		ClusterLabel:        "cluster",
		Namespace:           "upgradeguard",
		Name:                "upgradeguard",
		Labels: map[string]string{
			"app.kubernetes.io/name":      "upgradeguard",
			"app.kubernetes.io/component": "alerts",
		},
		RunbookBaseURL: DefaultRunbookBaseURL,
	}
}

// Severities are the allowed values of the severity label, most urgent
// first.
var Severities = []string{"critical", "warning", "info"}

// Alert is one alerting rule as generated.
type Alert struct {
	Name, Severity string
	// Group is the rule group the alert is in.
	Group string
	Expr  string
	For   time.Duration
	// Summary is a static sentence; Description is a template of the
	// alert's labels and value.
	Summary, Description string
	RunbookURL           string
}

// Labels returns the labels of the alert's rule: its severity, and
// UpgradeInProgressLabel when UpgradeInProgressAlerts names it.
func (a Alert) Labels() map[string]string {
	l := map[string]string{"severity": a.Severity}
	if slices.Contains(UpgradeInProgressAlerts, a.Name) {
		l[UpgradeInProgressLabel] = "true"
	}
	return l
}

// Record is one recording rule as generated.
type Record struct {
	Name, Group, Expr string
}

// List returns every alert, in the order of the generated rules. An
// Options.For entry naming no alert is ignored here (PrometheusRule reports
// it).
func List(o Options) []Alert {
	var out []Alert
	for _, g := range groups(o) {
		out = append(out, g.alerts...)
	}
	return out
}

// Records returns every recording rule, in the order of the generated rules.
func Records(o Options) []Record {
	var out []Record
	for _, g := range groups(o) {
		out = append(out, g.records...)
	}
	return out
}

type group struct {
	name    string
	records []Record
	alerts  []Alert
}

// groups builds the rule groups with o's selectors, `for` overrides and
// runbook links applied, sorted.
func groups(o Options) []group {
	gs := append(definitions(o), apisGroup(o))
	for gi := range gs {
		g := &gs[gi]
		for i := range g.records {
			g.records[i].Group = g.name
		}
		for i := range g.alerts {
			a := &g.alerts[i]
			a.Group = g.name
			if d, ok := o.For[a.Name]; ok {
				a.For = d
			}
			a.Description = strings.ReplaceAll(a.Description, forPlaceholder, formatDuration(a.For))
			a.RunbookURL = o.RunbookBaseURL + "#" + strings.ToLower(a.Name)
		}
		slices.SortStableFunc(g.alerts, func(a, b Alert) int {
			if c := strings.Compare(a.Name, b.Name); c != 0 {
				return c
			}
			return slices.Index(Severities, a.Severity) - slices.Index(Severities, b.Severity)
		})
	}
	slices.SortFunc(gs, func(a, b group) int { return strings.Compare(a.name, b.name) })
	return gs
}

// forPlaceholder in a description is replaced by the alert's `for`, so that
// the text stays true when Options.For changes it.
const forPlaceholder = "%FOR%"

func formatDuration(d time.Duration) string { return model.Duration(d).String() }

// validate reports options that would produce broken rules.
func (o Options) validate() error {
	var errs []error
	for name, v := range map[string]string{
		"ExporterJob": o.ExporterJob, "AWSNodeJob": o.AWSNodeJob,
		"KubeStateMetricsJob": o.KubeStateMetricsJob, "Name": o.Name, "APIServerJob": o.APIServerJob,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is empty", name))
		}
	}
	if !model.LegacyValidation.IsValidLabelName(o.ClusterLabel) {
		errs = append(errs, fmt.Errorf("ClusterLabel %q is not a valid label name", o.ClusterLabel))
	}
	if o.RunbookBaseURL == "" {
		errs = append(errs, errors.New("RunbookBaseURL is empty"))
	}
	if !releaseRE.MatchString(o.RemovedAPIRelease) {
		errs = append(errs, fmt.Errorf("RemovedAPIRelease %q: want 1.N", o.RemovedAPIRelease))
	}
	names := map[string]bool{}
	for _, a := range List(o) {
		names[a.Name] = true
	}
	for _, name := range sortedKeys(o.For) {
		switch d := o.For[name]; {
		case !names[name]:
			errs = append(errs, fmt.Errorf("option For: %q is not an alert", name))
		case d < 0:
			errs = append(errs, fmt.Errorf("option For: %s: negative duration %s", name, d))
		case d%time.Millisecond != 0:
			errs = append(errs, fmt.Errorf("option For: %s: %s is not a whole number of milliseconds", name, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("alert options: %w", err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ruleGroups converts the groups to prometheus-operator's types, which are
// also the rule file's format.
func ruleGroups(o Options) ([]monitoringv1.RuleGroup, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	var out []monitoringv1.RuleGroup
	for _, g := range groups(o) {
		rg := monitoringv1.RuleGroup{Name: g.name}
		for _, r := range g.records {
			rg.Rules = append(rg.Rules, monitoringv1.Rule{Record: r.Name, Expr: intstr.FromString(r.Expr)})
		}
		for _, a := range g.alerts {
			rule := monitoringv1.Rule{
				Alert:  a.Name,
				Expr:   intstr.FromString(a.Expr),
				Labels: a.Labels(),
				Annotations: map[string]string{
					"summary":     a.Summary,
					"description": a.Description,
					"runbook_url": a.RunbookURL,
				},
			}
			if a.For > 0 {
				d := monitoringv1.Duration(formatDuration(a.For))
				rule.For = &d
			}
			rg.Rules = append(rg.Rules, rule)
		}
		out = append(out, rg)
	}
	return out, nil
}

// PrometheusRule returns the rules as a prometheus-operator PrometheusRule.
func PrometheusRule(o Options) (*monitoringv1.PrometheusRule, error) {
	gs, err := ruleGroups(o)
	if err != nil {
		return nil, err
	}
	var labels map[string]string
	if len(o.Labels) > 0 {
		labels = map[string]string{}
		for k, v := range o.Labels {
			labels[k] = v
		}
	}
	return &monitoringv1.PrometheusRule{
		TypeMeta:   metav1.TypeMeta{APIVersion: monitoringv1.SchemeGroupVersion.String(), Kind: monitoringv1.PrometheusRuleKind},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: labels},
		Spec:       monitoringv1.PrometheusRuleSpec{Groups: gs},
	}, nil
}

// PrometheusRuleYAML returns PrometheusRule(o) as YAML.
func PrometheusRuleYAML(o Options) ([]byte, error) {
	pr, err := PrometheusRule(o)
	if err != nil {
		return nil, err
	}
	// A map rather than the struct, so that the read-only status and the
	// zero creationTimestamp stay out of a file meant to be applied.
	meta := map[string]any{"name": pr.Name}
	if pr.Namespace != "" {
		meta["namespace"] = pr.Namespace
	}
	if len(pr.Labels) > 0 {
		meta["labels"] = pr.Labels
	}
	doc := map[string]any{
		"apiVersion": pr.APIVersion,
		"kind":       pr.Kind,
		"metadata":   meta,
		"spec":       pr.Spec,
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("marshalling the PrometheusRule: %w", err)
	}
	return b, nil
}

// RuleFileYAML returns the same groups as a Prometheus rule file, for
// promtool and for a Prometheus run without the operator.
func RuleFileYAML(o Options) ([]byte, error) {
	gs, err := ruleGroups(o)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(map[string]any{"groups": gs})
	if err != nil {
		return nil, fmt.Errorf("marshalling the rule file: %w", err)
	}
	return b, nil
}
