// Package promqlcheck checks that PromQL expressions parse and read only
// metrics that exist: the exporter's own (from its descriptors) or a declared
// list of external ones (aws-node's ipamd, kube-state-metrics, Prometheus's
// own series, recording rules). A misspelt metric name in an alert makes it
// silently never fire; this catches it before it ships.
package promqlcheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/upgradeguard/upgradeguard/internal/exporter"
)

// promql is the parser, with the default (stable) language only: what the
// rules use must work on any Prometheus.
var promql = parser.NewParser(parser.Options{})

// Parse parses expr, with the parser's error naming the position.
func Parse(expr string) (parser.Expr, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", expr, err)
	}
	return e, nil
}

// Metrics parses expr and returns the names of the metrics its selectors
// select, sorted and without duplicates. A selector with no literal metric
// name (e.g. {__name__=~"up|foo"} or {job="x"}) is an error: what it reads
// cannot be checked.
func Metrics(expr string) ([]string, error) {
	e, err := Parse(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name == "" {
			errs = append(errs, fmt.Errorf("selector %s in %q has no literal metric name", vs, expr))
			return nil
		}
		names = append(names, name)
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Known is a set of metric names an expression may read.
type Known struct {
	names map[string]bool
}

// NewKnown returns the set of the given names.
func NewKnown(lists ...[]string) *Known {
	k := &Known{names: map[string]bool{}}
	for _, l := range lists {
		k.Add(l...)
	}
	return k
}

// Add adds names to the set.
func (k *Known) Add(names ...string) {
	for _, n := range names {
		k.names[n] = true
	}
}

// Has says whether name is known. Only exact names count: a summary's or
// histogram's _sum, _count and _bucket series must be declared as such, so
// that upgradeguard_node_ready_sum is not taken for a series.
func (k *Known) Has(name string) bool { return k.names[name] }

// Check parses expr and returns an error naming every metric it reads that
// is not known, or the parse error.
func (k *Known) Check(expr string) error {
	names, err := Metrics(expr)
	if err != nil {
		return err
	}
	var unknown []string
	for _, n := range names {
		if !k.Has(n) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%q reads unknown metrics %s: neither registered by the exporter nor declared external", expr, strings.Join(unknown, ", "))
	}
	return nil
}

// Default returns the exporter's metric names, read from its descriptors,
// the declared external metrics (External) and extra names, such as the
// recording rules of the expressions being checked.
func Default(extra ...string) (*Known, error) {
	names, err := exporter.MetricNames()
	if err != nil {
		return nil, err
	}
	return NewKnown(names, External(), extra), nil
}
