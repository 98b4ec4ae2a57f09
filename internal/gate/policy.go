package gate

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/upgradeguard/upgradeguard/internal/strictyaml"
)

// Policy is the gate's policy file: which checks run and their thresholds.
// The zero value, after defaults, is the safe default policy (every check
// on); see docs/gate.md for the reference.
type Policy struct {
	// Consecutive passing evaluations needed for GO (default 2).
	Consecutive int `yaml:"consecutive"`
	// Interval between evaluations (default 30s).
	Interval Duration `yaml:"interval"`
	// Matchers are label matchers added to every query, e.g.
	// `cluster="prod"` when one Thanos serves several clusters.
	Matchers string `yaml:"matchers"`
	// Job is a regular expression for the job label of the exporter's
	// series and its up (default "upgradeguard.*").
	Job string `yaml:"job"`

	Alerts     AlertsPolicy     `yaml:"alerts"`
	Monitoring MonitoringPolicy `yaml:"monitoring"`
	Nodes      NodesPolicy      `yaml:"nodes"`
	Drain      DrainPolicy      `yaml:"drain"`
	Capacity   CapacityPolicy   `yaml:"capacity"`
	// Availability: Services keep ready endpoints, workloads their
	// replicas, PDBs their healthy pods (availability.go).
	Availability AvailabilityPolicy `yaml:"availability"`
	// Probes are HTTP(S) endpoints the gate requests itself (probes.go).
	Probes []Probe       `yaml:"probes"`
	Custom []CustomCheck `yaml:"custom"`

	matchers []matcher // parsed Matchers
}

// Duration is a duration in a policy file: Prometheus' form ("1d", "5m")
// or Go's ("1m30s", "1.5s").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if md, err := model.ParseDuration(s); err == nil {
		*d = Duration(md)
		return nil
	}
	td, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q (want e.g. 30s, 5m, 1h)", n.Line, s)
	}
	if td < 0 {
		return fmt.Errorf("line %d: negative duration %q", n.Line, s)
	}
	*d = Duration(td)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d Duration) String() string { return time.Duration(d).String() }

// Enabled reports whether a check section is on (the default).
func enabled(b *bool) bool { return b == nil || *b }

// DefaultPolicy is the policy without a file: every check on, safe
// defaults.
func DefaultPolicy() Policy {
	var p Policy
	if err := p.defaults(); err != nil {
		panic(err) // the defaults are constants
	}
	return p
}

// LoadPolicy reads a policy file. Unknown fields, wrong types and bad values
// are errors that name the file, the line and the field.
func LoadPolicy(path string) (Policy, error) {
	return strictyaml.Load(path, ParsePolicy)
}

// ParsePolicy decodes a policy strictly and fills in the defaults.
func ParsePolicy(b []byte) (Policy, error) {
	var p Policy
	if err := strictyaml.Decode(b, &p); err != nil {
		if errors.Is(err, strictyaml.ErrMoreThanOneDocument) {
			return Policy{}, err
		}
		return Policy{}, nameFields(b, explainYAMLError(err))
	}
	if err := p.defaults(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// sections maps the policy's Go types to their place in the file, for
// error messages: the top level and every field of Policy that is a
// section (a struct, or a list of them).
func sections() map[string]reflect.Type {
	top := reflect.TypeFor[Policy]()
	out := map[string]reflect.Type{"the top level": top}
	for i := range top.NumField() {
		f := top.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		switch {
		case tag == "":
		case f.Type.Kind() == reflect.Struct:
			out[tag] = f.Type
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out[tag+"[]"] = f.Type.Elem()
		}
	}
	return out
}

var (
	unknownFieldRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type gate\.(\w+)`)
	cannotRE       = regexp.MustCompile(`line (\d+): cannot unmarshal !!(\w+) ` + "`" + `([^` + "`" + `]*)` + "`" + ` into (\S+)`)
)

// explainYAMLError rewrites yaml.v3's messages in the policy's terms.
func explainYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var msgs []string
	for _, m := range te.Errors {
		if s := unknownFieldRE.FindStringSubmatch(m); s != nil {
			where, fields := "", ""
			for name, t := range sections() {
				if t.Name() == s[3] {
					where, fields = name, strings.Join(yamlFields(t), ", ")
				}
			}
			msgs = append(msgs, fmt.Sprintf("line %s: unknown field %q in %s (known fields: %s)", s[1], s[2], where, fields))
			continue
		}
		if s := cannotRE.FindStringSubmatch(m); s != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: %q is a %s, but the field wants %s", s[1], s[3], s[2], goTypeWord(s[4])))
			continue
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

var lineRE = regexp.MustCompile(`line (\d+): (unknown field )?`)

// nameFields adds the field's place in the file to each "line N: " of
// err's message, e.g. "line 3 (nodes.startup_grace): ...", from the YAML
// node tree of the policy b: yaml.v3's errors and the field types' own
// UnmarshalYAML name the line only.
func nameFields(b []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return err
	}
	msg := lineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := lineRE.FindStringSubmatch(m)
		if sub[2] != "" {
			return m // names its field and section already
		}
		line, _ := strconv.Atoi(sub[1])
		if path := fieldAt(&root, line, ""); path != "" {
			return fmt.Sprintf("line %d (%s): ", line, path)
		}
		return m
	})
	return errors.New(msg)
}

// fieldAt returns the dotted path (with [i] for list items) of the deepest
// mapping key on line whose value starts on that line, or "".
func fieldAt(n *yaml.Node, line int, path string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := fieldAt(c, line, path); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if deeper := fieldAt(v, line, p); deeper != "" {
				return deeper
			}
			if k.Line == line {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if deeper := fieldAt(c, line, p); deeper != "" {
				return deeper
			}
			if c.Line == line && c.Kind == yaml.ScalarNode {
				return p
			}
		}
	}
	return ""
}

func goTypeWord(t string) string {
	switch {
	case t == "bool" || t == "*bool":
		return "true or false"
	case strings.Contains(t, "int"):
		return "an integer"
	case strings.Contains(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case t == "string":
		return "a string"
	}
	return t
}

func yamlFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" {
			out = append(out, strings.Split(tag, ",")[0])
		}
	}
	return out
}

func (p *Policy) defaults() error {
	if p.Consecutive == 0 {
		p.Consecutive = 2
	}
	if p.Interval == 0 {
		p.Interval = Duration(30 * time.Second)
	}
	if p.Job == "" {
		p.Job = "upgradeguard.*"
	}
	for _, d := range checks() {
		if d.Defaults != nil {
			d.Defaults(p)
		}
	}
	return p.validate()
}

// validate checks the values and parses the matchers; errors name the field.
func (p *Policy) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if p.Consecutive < 1 {
		bad("consecutive", "%d; want at least 1", p.Consecutive)
	}
	if p.Interval <= 0 {
		bad("interval", "%s; want a positive duration", p.Interval)
	}
	var err error
	if p.matchers, err = parseMatchers(p.Matchers); err != nil {
		bad("matchers", "%v", err)
	}
	for _, m := range p.matchers {
		if m.name == "__name__" || m.name == "job" {
			bad("matchers", "%s is set by the gate itself (use the job field for the exporter's job)", m.name)
		}
	}
	if _, err := regexp.Compile("^(?:" + p.Job + ")$"); err != nil {
		bad("job", "bad regular expression %q: %v", p.Job, err)
	}
	for _, d := range checks() {
		if d.Validate != nil {
			d.Validate(p, bad)
		}
	}
	return errors.Join(errs...)
}

// matcher is one PromQL label matcher.
type matcher struct {
	name, op, value string
	re              *regexp.Regexp
}

func (m matcher) String() string { return m.name + m.op + strconv.Quote(m.value) }

// matches applies the matcher as Prometheus does: a missing label is "".
func (m matcher) matches(labels map[string]string) bool {
	v := labels[m.name]
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	default: // "!~"
		return !m.re.MatchString(v)
	}
}

var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|` + "`[^`]*`" + `)\s*(,|$)`)

// parseMatchers parses `a="x", b=~"y|z"` (braces optional).
func parseMatchers(s string) ([]matcher, error) {
	orig := s
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
	}
	var out []matcher
	for strings.TrimSpace(s) != "" {
		sub := matcherRE.FindStringSubmatchIndex(s)
		if sub == nil {
			return nil, fmt.Errorf("bad label matcher at %q in %q (want name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\", separated by commas)", strings.TrimSpace(s), orig)
		}
		name, op, quoted := s[sub[2]:sub[3]], s[sub[4]:sub[5]], s[sub[6]:sub[7]]
		value, err := strconv.Unquote(quoted)
		if err != nil {
			return nil, fmt.Errorf("bad string %s in %q: %v", quoted, orig, err)
		}
		m := matcher{name: name, op: op, value: value}
		if op == "=~" || op == "!~" {
			if m.re, err = regexp.Compile("^(?:" + value + ")$"); err != nil {
				return nil, fmt.Errorf("bad regular expression %q in %q: %v", value, orig, err)
			}
		}
		out = append(out, m)
		s = s[sub[1]:]
	}
	return out, nil
}
