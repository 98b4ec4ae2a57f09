package preflight

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/upgradeguard/upgradeguard/internal/strictyaml"
)

// Policy is preflight's policy file (--policy): the settings of the roll the
// workloads family judges against, and the severity of each of its rules.
// The zero value is the default policy. Example:
//
//	workloads:
//	  drain_timeout: 15m        # the roll's --drain-timeout
//	  max_unavailable: 1        # the roll's --max-unavailable
//	  exclude_namespaces: [kube-system]
//	  severity:
//	    no-readiness-probe: info
//	    emptydir: off
type Policy struct {
	Workloads WorkloadsPolicy `yaml:"workloads"`
}

// WorkloadsPolicy is the workloads section of a preflight policy.
type WorkloadsPolicy struct {
	// DrainTimeout is the roll's --drain-timeout (default 15m): pods that
	// take longer to stop make a drain time out.
	DrainTimeout PolicyDuration `yaml:"drain_timeout"`
	// MaxUnavailable is the roll's --max-unavailable (default 1): the
	// nodes drained together in one step.
	MaxUnavailable PolicyCount `yaml:"max_unavailable"`
	// ExcludeNamespaces are namespaces whose workloads are not judged.
	ExcludeNamespaces []string `yaml:"exclude_namespaces"`
	// Severity sets a rule's severity (blocker, warning, info or off); a
	// rule not named is a warning.
	Severity RuleSeverities `yaml:"severity"`
}

// Off is the severity a policy gives a rule to drop its findings; it never
// appears in a report.
const Off Severity = "off"

// Defaults of the workloads policy: the roll's own flag defaults
// (cmd/upgradeguard/roll.go --drain-timeout and --max-unavailable).
const (
	DefaultDrainTimeout   = 15 * time.Minute
	DefaultMaxUnavailable = 1
)

// drainTimeout is the drain timeout the policy sets, or the default.
func (p WorkloadsPolicy) drainTimeout() time.Duration {
	if p.DrainTimeout <= 0 {
		return DefaultDrainTimeout
	}
	return time.Duration(p.DrainTimeout)
}

// maxUnavailable is the nodes drained at once the policy sets, or the
// default.
func (p WorkloadsPolicy) maxUnavailable() int {
	if p.MaxUnavailable <= 0 {
		return DefaultMaxUnavailable
	}
	return int(p.MaxUnavailable)
}

// severity is the severity of a rule's findings: the policy's, or warning.
func (p WorkloadsPolicy) severity(rule string) Severity {
	if s, ok := p.Severity[rule]; ok {
		return s
	}
	return Warning
}

// PolicyDuration is a duration in a policy file, in Go's form ("15m",
// "1h30m").
type PolicyDuration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *PolicyDuration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 15m", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d: bad duration %q (want a positive duration such as 15m)", n.Line, s)
	}
	*d = PolicyDuration(v)
	return nil
}

// PolicyCount is a count of at least 1 in a policy file.
type PolicyCount int

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *PolicyCount) UnmarshalYAML(n *yaml.Node) error {
	var v int
	if err := n.Decode(&v); err != nil || v < 1 {
		return fmt.Errorf("line %d: %q: want an integer of at least 1", n.Line, n.Value)
	}
	*c = PolicyCount(v)
	return nil
}

// RuleSeverities maps a workloads rule to its severity.
type RuleSeverities map[string]Severity

// UnmarshalYAML implements yaml.Unmarshaler: every key must be a rule of
// WorkloadRules and every value blocker, warning, info or off.
func (r *RuleSeverities) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping of rule to severity", n.Line)
	}
	out := RuleSeverities{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(WorkloadRules, k.Value) {
			return fmt.Errorf("line %d: unknown rule %q in workloads.severity (rules: %s)", k.Line, k.Value, strings.Join(WorkloadRules, ", "))
		}
		s := Severity(v.Value)
		if v.Kind != yaml.ScalarNode || (s != Blocker && s != Warning && s != Info && s != Off) {
			return fmt.Errorf("line %d: severity %q of %s: want blocker, warning, info or off", v.Line, v.Value, k.Value)
		}
		out[k.Value] = s
	}
	*r = out
	return nil
}

// LoadPolicy reads a preflight policy file; errors name the file and the
// line.
func LoadPolicy(path string) (Policy, error) {
	return strictyaml.Load(path, ParsePolicy)
}

// ParsePolicy decodes a preflight policy strictly: unknown fields, wrong
// types and bad values are errors naming the line. An empty document is the
// default policy.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	if err := strictyaml.Decode(b, &p); err != nil {
		if errors.Is(err, strictyaml.ErrMoreThanOneDocument) {
			return Policy{}, err
		}
		return Policy{}, explainPolicyError(err)
	}
	return p, nil
}

var policyFieldRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type preflight\.(\w+)`)

// explainPolicyError rewrites yaml.v3's unknown-field messages in the
// policy's terms: the section and its known fields.
func explainPolicyError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	sections := map[string]struct {
		where  string
		fields string
	}{
		"Policy":          {"the top level", "workloads"},
		"WorkloadsPolicy": {"workloads", "drain_timeout, max_unavailable, exclude_namespaces, severity"},
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if s := policyFieldRE.FindStringSubmatch(m); s != nil {
			sec := sections[s[3]]
			msgs = append(msgs, fmt.Sprintf("line %s: unknown field %q in %s (known fields: %s)", s[1], s[2], sec.where, sec.fields))
			continue
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}
