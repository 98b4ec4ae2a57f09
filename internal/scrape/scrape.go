// Package scrape reads an exporter's /metrics the way Prometheus would, for
// the end-to-end tests, the demo and the scale scenario.
package scrape

import (
	"context"
	"fmt"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is a parsed scrape: metric families by name.
type Families map[string]*dto.MetricFamily

// Get scrapes url (an exporter's /metrics) and parses the text exposition.
func Get(ctx context.Context, url string) (Families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	return mfs, nil
}

// Sample is one series of a family.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Samples returns the series of family name whose labels include match.
func (f Families) Samples(name string, match map[string]string) []Sample {
	mf, ok := f[name]
	if !ok {
		return nil
	}
	var out []Sample
next:
	for _, m := range mf.GetMetric() {
		labels := make(map[string]string, len(m.GetLabel()))
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range match {
			if labels[k] != v {
				continue next
			}
		}
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		default:
			continue
		}
		out = append(out, Sample{Labels: labels, Value: v})
	}
	return out
}

// Value returns the value of the first series of family name whose labels
// include match, and whether there is one.
func (f Families) Value(name string, match map[string]string) (float64, bool) {
	s := f.Samples(name, match)
	if len(s) == 0 {
		return 0, false
	}
	return s[0].Value, true
}

// Count returns the number of series in the scrape.
func (f Families) Count() int {
	n := 0
	for _, mf := range f {
		n += len(mf.GetMetric())
	}
	return n
}
