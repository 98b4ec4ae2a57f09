package metricstore

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Gatherer returns a prometheus.Gatherer of the writers' families, parsed
// back from the text they write: for tests (testutil.GatherAndCompare) and
// for in-process readers, not for serving. Its Gather fails when the text
// does not parse, or when a family is written twice.
func Gatherer(writers ...Writer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var buf bytes.Buffer
		for _, w := range writers {
			if err := w.WriteMetrics(&buf); err != nil {
				return nil, err
			}
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		byName, err := p.TextToMetricFamilies(&buf)
		if err != nil {
			return nil, fmt.Errorf("parsing rendered metrics: %w", err)
		}
		mfs := make([]*dto.MetricFamily, 0, len(byName))
		for _, mf := range byName {
			// As the registry does (internal.NormalizeMetricFamilies):
			// label pairs by name, series by their label values.
			for _, m := range mf.Metric {
				sort.Slice(m.Label, func(i, j int) bool { return m.Label[i].GetName() < m.Label[j].GetName() })
			}
			sort.SliceStable(mf.Metric, func(i, j int) bool { return labelsLess(mf.Metric[i].Label, mf.Metric[j].Label) })
			mfs = append(mfs, mf)
		}
		sort.Slice(mfs, func(i, j int) bool { return mfs[i].GetName() < mfs[j].GetName() })
		return mfs, nil
	})
}

func labelsLess(a, b []*dto.LabelPair) bool {
	for i := range min(len(a), len(b)) {
		if a[i].GetName() != b[i].GetName() {
			return a[i].GetName() < b[i].GetName()
		}
		if a[i].GetValue() != b[i].GetValue() {
			return a[i].GetValue() < b[i].GetValue()
		}
	}
	return len(a) < len(b)
}
