package pdb

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series is one kept series: its descriptor, label values and value. It
// builds its protobuf form only when written, during a scrape, so a kept
// series costs about 50 bytes where a prometheus.MustNewConstMetric, which
// keeps its protobuf form, costs about 370: at kubetest.Production the
// collector's state took 31.9 MiB with const metrics and takes 17.1 MiB so
// (TestHeapProfile). A series is never modified once
// built, so a scrape writes it without holding the collector's lock.
type series struct {
	desc  *prometheus.Desc
	value float64
	// values are the label values in the order of their sorted names,
	// labelNames[kind]; the series of one node or one PDB share them.
	values []string
	kind   labelKind
}

type labelKind uint8

const (
	nodeLabels labelKind = iota
	blockedLabels
	budgetLabels
)

// labelNames are the label names of each kind, sorted, as exposition wants
// them.
var labelNames = [...][]string{
	nodeLabels:    {"node"},
	blockedLabels: {"namespace", "node", "pdb", "reason"},
	budgetLabels:  {"namespace", "pdb"},
}

// Desc implements prometheus.Metric.
func (s *series) Desc() *prometheus.Desc { return s.desc }

// Write implements prometheus.Metric: a gauge with the series' labels. The
// pointers it stores are the series' own fields and the package's label
// names, which nobody modifies.
func (s *series) Write(out *dto.Metric) error {
	names := labelNames[s.kind]
	pairs := make([]dto.LabelPair, len(names))
	out.Label = make([]*dto.LabelPair, len(names))
	for i := range names {
		pairs[i].Name, pairs[i].Value = &names[i], &s.values[i]
		out.Label[i] = &pairs[i]
	}
	out.Gauge = &dto.Gauge{Value: &s.value}
	return nil
}
