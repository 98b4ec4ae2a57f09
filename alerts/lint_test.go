package alerts

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/upgradeguard/upgradeguard/internal/promqlcheck"
)

var (
	alertName  = regexp.MustCompile(`^UpgradeGuard[A-Z][A-Za-z0-9]*$`)
	recordName = regexp.MustCompile(`^upgradeguard:[a-z0-9_]+:[a-z0-9_]+$`)
	// A template action that reads a label, one that reads the value.
	labelsAction = regexp.MustCompile(`\{\{[^}]*\$labels\.[a-zA-Z_]`)
	valueAction  = regexp.MustCompile(`\{\{[^}]*\$value\b`)
)

// TestConventions checks the monitoring mixins' conventions on every alert,
// with every option set.
func TestConventions(t *testing.T) {
	for setName, o := range optionSets() {
		list := List(o)
		// About 15 to 20, and a few more for the VPC CNI's missing
		// metrics and the zones' /28 blocks.
		if n := len(list); n < 15 || n > 30 {
			t.Errorf("%s: %d alerts; want about 15 to 20, and a few more", setName, n)
		}
		type key struct{ name, severity string }
		seen := map[key]bool{}
		groupOf := map[string]string{}
		for _, a := range list {
			where := fmt.Sprintf("%s: %s (%s)", setName, a.Name, a.Severity)
			if !alertName.MatchString(a.Name) {
				t.Errorf("%s: name is not CamelCase with the UpgradeGuard prefix", where)
			}
			// The watchdog alone has kube-prometheus' Watchdog severity, so
			// that no receiver is paged by it; it fires from the first
			// evaluation on purpose.
			watchdog := a.Name == WatchdogAlert
			switch {
			case watchdog && a.Severity != WatchdogSeverity:
				t.Errorf("%s: the watchdog's severity must be %q", where, WatchdogSeverity)
			case !watchdog && !slices.Contains(Severities, a.Severity):
				t.Errorf("%s: severity not one of %v", where, Severities)
			}
			if seen[key{a.Name, a.Severity}] {
				t.Errorf("%s: defined twice", where)
			}
			seen[key{a.Name, a.Severity}] = true
			if g, ok := groupOf[a.Name]; ok && g != a.Group {
				t.Errorf("%s: in groups %s and %s", where, g, a.Group)
			}
			groupOf[a.Name] = a.Group
			if a.For <= 0 && !watchdog {
				t.Errorf("%s: no `for`: a single evaluation would page", where)
			}
			if strings.Contains(a.Summary, "{{") || !strings.HasSuffix(a.Summary, ".") ||
				a.Summary == "" || a.Summary[:1] != strings.ToUpper(a.Summary[:1]) {
				t.Errorf("%s: summary %q is not a static sentence ending in a period", where, a.Summary)
			}
			d := a.Description
			if !labelsAction.MatchString(d) || !valueAction.MatchString(d) {
				t.Errorf("%s: description %q is not templated with the labels and the value", where, d)
			}
			if !strings.HasSuffix(d, ".") || strings.Contains(d, forPlaceholder) {
				t.Errorf("%s: description %q does not end in a period or has a placeholder left", where, d)
			}
			if err := parseTemplate(d); err != nil {
				t.Errorf("%s: description: %v", where, err)
			}
			if want := o.RunbookBaseURL + "#" + strings.ToLower(a.Name); a.RunbookURL != want {
				t.Errorf("%s: runbook_url %q, want %q", where, a.RunbookURL, want)
			}
		}
		names := map[string]bool{}
		for _, r := range Records(o) {
			if !recordName.MatchString(r.Name) {
				t.Errorf("%s: recording rule %s is not upgradeguard:<metric>:<operations>", setName, r.Name)
			}
			if names[r.Name] {
				t.Errorf("%s: recording rule %s defined twice", setName, r.Name)
			}
			names[r.Name] = true
		}
	}
}

// parseTemplate parses a description as Prometheus expands it: with
// $labels and $value defined and its template functions.
func parseTemplate(text string) error {
	funcs := template.FuncMap{}
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "title", "toUpper", "toLower", "reReplaceAll", "match", "query", "first", "label", "value", "args", "safeHtml", "pathPrefix", "externalURL", "tableLink", "graphLink", "strvalue", "sortByLabel"} {
		funcs[f] = func(...any) any { return nil }
	}
	_, err := template.New("description").Funcs(funcs).Option("missingkey=zero").
		Parse("{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}" + text)
	return err
}

// githubAnchor is the anchor GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestRunbooks: every alert's runbook anchor is a heading of
// docs/runbooks.md whose section says what the alert means, why it matters
// during an upgrade, what to check and what to do; and every alert-level
// heading there is an alert.
func TestRunbooks(t *testing.T) {
	md, err := os.ReadFile("../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	var current string
	for line := range strings.SplitSeq(string(md), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			current = githubAnchor(h)
			if _, dup := sections[current]; dup {
				t.Errorf("runbooks.md: heading %q twice", h)
			}
			sections[current] = ""
			continue
		}
		if strings.HasPrefix(line, "#") {
			current = ""
			continue
		}
		if current != "" {
			sections[current] += line + "\n"
		}
	}
	o := DefaultOptions()
	anchors := map[string]bool{}
	for _, a := range List(o) {
		anchor := a.RunbookURL[strings.Index(a.RunbookURL, "#")+1:]
		anchors[anchor] = true
		body, ok := sections[anchor]
		if !ok {
			t.Errorf("%s: docs/runbooks.md has no heading with anchor #%s", a.Name, anchor)
			continue
		}
		for _, part := range []string{"**Meaning.**", "**Why it matters during an upgrade.**", "**What to check.**", "**What to do.**"} {
			if !strings.Contains(body, part) {
				t.Errorf("%s: runbook section lacks %s", a.Name, part)
			}
		}
	}
	for anchor := range sections {
		if !anchors[anchor] {
			t.Errorf("docs/runbooks.md: section #%s is no alert", anchor)
		}
	}
}

// TestExpressionsReadKnownMetrics: every expression parses and reads only
// metrics the exporter registers (from its descriptors), declared external
// ones, or the recording rules.
func TestExpressionsReadKnownMetrics(t *testing.T) {
	for setName, o := range optionSets() {
		var records []string
		for _, r := range Records(o) {
			records = append(records, r.Name)
		}
		known, err := promqlcheck.Default(records...)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range Records(o) {
			if err := known.Check(r.Expr); err != nil {
				t.Errorf("%s: %s: %v", setName, r.Name, err)
			}
		}
		for _, a := range List(o) {
			if err := known.Check(a.Expr); err != nil {
				t.Errorf("%s: %s (%s): %v", setName, a.Name, a.Severity, err)
			}
		}
	}
}

// TestSelectorsAndGrouping: every selector of a scraped metric matches the
// job of its family, and every aggregation and vector matching keeps the
// cluster label (and never the default one when another is configured), so
// that the rules work over many clusters.
func TestSelectorsAndGrouping(t *testing.T) {
	for setName, o := range optionSets() {
		records := map[string]bool{}
		for _, r := range Records(o) {
			records[r.Name] = true
		}
		jobOf := func(metric string) string {
			switch {
			case records[metric], metric == "ALERTS", metric == "ALERTS_FOR_STATE":
				return ""
			case strings.HasPrefix(metric, "awscni_"):
				return o.AWSNodeJob
			case strings.HasPrefix(metric, "kube_"):
				return o.KubeStateMetricsJob
			case strings.HasPrefix(metric, "apiserver_"):
				return o.APIServerJob
			}
			return o.ExporterJob // upgradeguard_* and the exporter's up
		}
		check := func(what, expr string) {
			e, err := promqlcheck.Parse(expr)
			if err != nil {
				t.Errorf("%s: %s: %v", setName, what, err)
				return
			}
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				switch n := n.(type) {
				case *parser.VectorSelector:
					var job string
					for _, m := range n.LabelMatchers {
						if m.Name == "job" {
							job = m.Type.String() + m.Value
						}
					}
					want := ""
					if j := jobOf(n.Name); j != "" {
						want = "=" + j
					}
					if job != want {
						t.Errorf("%s: %s: %s: job matcher %q, want %q", setName, what, n, job, want)
					}
				case *parser.AggregateExpr:
					if !n.Without && !slices.Contains(n.Grouping, o.ClusterLabel) {
						t.Errorf("%s: %s: %s does not keep %s", setName, what, n, o.ClusterLabel)
					}
					if n.Without && slices.Contains(n.Grouping, o.ClusterLabel) {
						t.Errorf("%s: %s: %s drops %s", setName, what, n, o.ClusterLabel)
					}
				case *parser.BinaryExpr:
					if vm := n.VectorMatching; vm != nil && vm.On && len(vm.MatchingLabels) > 0 && !slices.Contains(vm.MatchingLabels, o.ClusterLabel) {
						t.Errorf("%s: %s: %s does not match on %s", setName, what, n, o.ClusterLabel)
					}
				}
				return nil
			})
			if o.ClusterLabel != "cluster" && regexp.MustCompile(`\bcluster\b`).MatchString(expr) {
				t.Errorf("%s: %s: %q uses the default cluster label", setName, what, expr)
			}
		}
		for _, r := range Records(o) {
			check(r.Name, r.Expr)
		}
		for _, a := range List(o) {
			check(a.Name, a.Expr)
		}
	}
}

func TestOutputIsDeterministic(t *testing.T) {
	o := DefaultOptions()
	o.For = map[string]time.Duration{
		"UpgradeGuardNodeNotReady": 20 * time.Minute, "UpgradeGuardPDBUnsatisfiable": time.Hour,
		"UpgradeGuardCollectorFailing": 5 * time.Minute, "UpgradeGuardAWSDataStale": 10 * time.Minute,
	}
	o.Labels["release"] = "kube-prometheus-stack"
	for _, f := range []func(Options) ([]byte, error){PrometheusRuleYAML, RuleFileYAML} {
		first, err := f(o)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			again, err := f(o)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, again) {
				t.Fatal("two generations differ")
			}
		}
	}
	// Groups sorted by name, alerts by name then severity.
	var names []string
	for _, g := range groups(o) {
		names = append(names, g.name)
		if !slices.IsSortedFunc(g.alerts, func(a, b Alert) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("%s: alerts not sorted by name", g.name)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("groups not sorted: %v", names)
	}
}

func TestForOverride(t *testing.T) {
	o := DefaultOptions()
	o.For = map[string]time.Duration{"UpgradeGuardPDBDisruptionsNotAllowed": 90 * time.Second}
	var found bool
	for _, a := range List(o) {
		if a.Name == "UpgradeGuardPDBDisruptionsNotAllowed" {
			found = true
			if a.For != 90*time.Second || !strings.Contains(a.Description, "for 1m30s;") {
				t.Errorf("override not applied: for %s, description %q", a.For, a.Description)
			}
		}
	}
	if !found {
		t.Fatal("UpgradeGuardPDBDisruptionsNotAllowed not in List")
	}
	b, err := RuleFileYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "for: 1m30s") {
		t.Error("the rule file does not carry the overridden for")
	}

	for _, tc := range []struct {
		override map[string]time.Duration
		err      string
	}{
		{map[string]time.Duration{"UpgradeGuardNoSuchAlert": time.Minute}, `"UpgradeGuardNoSuchAlert" is not an alert`},
		{map[string]time.Duration{"UpgradeGuardNodeNotReady": -time.Minute}, "negative duration"},
		{map[string]time.Duration{"UpgradeGuardNodeNotReady": time.Microsecond}, "whole number of milliseconds"},
	} {
		o := DefaultOptions()
		o.For = tc.override
		if _, err := PrometheusRule(o); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("For %v: error %v, want one containing %q", tc.override, err, tc.err)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Options)
		err    string
	}{
		{func(o *Options) { o.ExporterJob = "" }, "ExporterJob is empty"},
		{func(o *Options) { o.ClusterLabel = "my-cluster" }, `ClusterLabel "my-cluster" is not a valid label name`},
		{func(o *Options) { o.RunbookBaseURL = "" }, "RunbookBaseURL is empty"},
		{func(o *Options) { o.Name = "" }, "Name is empty"},
	} {
		o := DefaultOptions()
		tc.mutate(&o)
		if _, err := RuleFileYAML(o); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("error %v, want one containing %q", err, tc.err)
		}
	}
}

// TestPrometheusRuleRoundTrip: the YAML unmarshals into the operator's type
// with the rules and metadata of PrometheusRule, and the rule file holds the
// same groups.
func TestPrometheusRuleRoundTrip(t *testing.T) {
	o := DefaultOptions()
	want, err := PrometheusRule(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := PrometheusRuleYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	var got monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.APIVersion != "monitoring.coreos.com/v1" || got.Kind != "PrometheusRule" ||
		got.Name != o.Name || got.Namespace != o.Namespace || got.Labels["app.kubernetes.io/name"] != "upgradeguard" {
		t.Errorf("metadata: %+v %+v", got.TypeMeta, got.ObjectMeta)
	}
	if strings.Contains(string(b), "\nstatus:") || strings.Contains(string(b), "creationTimestamp") {
		t.Errorf("read-only fields in the PrometheusRule:\n%s", b)
	}
	gb, _ := yaml.Marshal(got.Spec)
	wb, _ := yaml.Marshal(want.Spec)
	if !bytes.Equal(gb, wb) {
		t.Error("spec differs after a round trip")
	}
	var file struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	rf, err := RuleFileYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(rf, &file); err != nil {
		t.Fatal(err)
	}
	fb, _ := yaml.Marshal(file.Groups)
	sb, _ := yaml.Marshal(want.Spec.Groups)
	if !bytes.Equal(fb, sb) {
		t.Error("the rule file's groups differ from the PrometheusRule's")
	}
	n := 0
	for _, g := range file.Groups {
		n += len(g.Rules)
	}
	if n != len(List(o))+len(Records(o)) {
		t.Errorf("%d rules in the file, want %d", n, len(List(o))+len(Records(o)))
	}
}
