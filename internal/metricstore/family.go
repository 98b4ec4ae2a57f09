// Package metricstore keeps metrics rendered in the Prometheus text
// exposition format (version 0.0.4) at watch time, so that a scrape only
// writes out bytes. It follows kube-state-metrics' pkg/metrics_store: each
// object's series are rendered when its informer event arrives and kept per
// object, a deletion drops them, and a scrape writes every family's header
// followed by the kept lines of each object.
//
// A collector renders with a Builder into a Store (store.go); the exporter's
// /metrics handler (handler.go) writes the registry's families and then each
// Writer's. The text format is
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format,
// written as github.com/prometheus/common/expfmt writes it (text_create.go):
// the same escaping and float formatting.
package metricstore

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Type is a metric family's type as the TYPE line names it.
type Type string

// The types the exporter renders.
const (
	Gauge   Type = "gauge"
	Counter Type = "counter"
)

// Family describes one metric family: its name, help text, type and label
// names, in the order their values are given to Builder.Add. A Family is
// declared once per package, like a prometheus.Desc, and never modified.
type Family struct {
	Name       string
	Help       string
	Type       Type
	LabelNames []string
}

// Header returns the family's HELP and TYPE lines, as a Writer writes them
// before the family's samples.
func (f *Family) Header() []byte {
	b := make([]byte, 0, len(f.Name)*2+len(f.Help)+32)
	b = append(b, "# HELP "...)
	b = append(b, f.Name...)
	b = append(b, ' ')
	b = append(b, helpEscaper.Replace(f.Help)...)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.Name...)
	b = append(b, ' ')
	b = append(b, f.Type...)
	return append(b, '\n')
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// AppendLabelValue appends v escaped as a label value (backslash, double
// quote and newline), without the quotes. Invalid UTF-8, which Prometheus
// would reject the whole scrape for, is replaced by U+FFFD.
func AppendLabelValue(b []byte, v string) []byte {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if !strings.ContainsAny(v, "\\\n\"") {
		return append(b, v...)
	}
	return append(b, valueEscaper.Replace(v)...)
}

// AppendFloat appends f as expfmt writes a sample value: 1, 0 and -1
// literally, NaN, +Inf and -Inf by name, else the shortest 'g' form.
func AppendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// AppendSeries appends one sample line without its value: the family name
// and its labels, then the constant labels (already rendered as
// `,name="value"` pairs by ConstLabels), then a space. The value and a
// newline complete the line. It panics when the number of values differs
// from the family's label names, as prometheus.MustNewConstMetric does: that
// is a bug in the collector, not bad input.
func AppendSeries(b []byte, f *Family, constLabels string, values ...string) []byte {
	if len(values) != len(f.LabelNames) {
		panic("metricstore: " + f.Name + ": " + strconv.Itoa(len(values)) + " label values for " + strconv.Itoa(len(f.LabelNames)) + " label names")
	}
	b = append(b, f.Name...)
	if len(values) > 0 || constLabels != "" {
		b = append(b, '{')
		for i, v := range values {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, f.LabelNames[i]...)
			b = append(b, `="`...)
			b = AppendLabelValue(b, v)
			b = append(b, '"')
		}
		if len(values) == 0 {
			b = append(b, constLabels[1:]...) // no leading comma
		} else {
			b = append(b, constLabels...)
		}
		b = append(b, '}')
	}
	return append(b, ' ')
}

// ConstLabels renders labels (e.g. the exporter's --cluster) as the
// `,name="value"` pairs every series of a Store ends with, sorted by name;
// "" for none.
func ConstLabels(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	slices.Sort(names)
	var b []byte
	for _, n := range names {
		b = append(b, ',')
		b = append(b, n...)
		b = append(b, `="`...)
		b = AppendLabelValue(b, labels[n])
		b = append(b, '"')
	}
	return string(b)
}

// Desc returns the family as a prometheus.Desc, for the exporter's list of
// the metrics it can serve (exporter.Describe) and its lint.
func (f *Family) Desc() *prometheus.Desc {
	return prometheus.NewDesc(f.Name, f.Help, f.LabelNames, nil)
}
