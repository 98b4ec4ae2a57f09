package collectors

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeCollector struct {
	name string
	err  error
}

var fakeDesc = prometheus.NewDesc("upgradeguard_fake", "A fake metric.", []string{"from"}, nil)

func (f fakeCollector) Update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(fakeDesc, prometheus.GaugeValue, 1, f.name)
	return f.err
}

func TestSetReportsSuccessPerCollector(t *testing.T) {
	set := NewSet(map[string]Collector{
		"good":   fakeCollector{name: "good"},
		"nodata": fakeCollector{name: "nodata", err: ErrNoData},
		"bad":    fakeCollector{name: "bad", err: errors.New("watch failed")},
	}, slog.New(slog.DiscardHandler))
	reg := prometheus.NewRegistry()
	reg.MustRegister(set)
	// A failing collector's metrics are still served (its last known
	// state), flagged by success 0.
	want := `
# HELP upgradeguard_collector_success Whether a collector's data was complete and fresh during this scrape (1) or not (0).
# TYPE upgradeguard_collector_success gauge
upgradeguard_collector_success{collector="bad"} 0
upgradeguard_collector_success{collector="good"} 1
upgradeguard_collector_success{collector="nodata"} 1
# HELP upgradeguard_fake A fake metric.
# TYPE upgradeguard_fake gauge
upgradeguard_fake{from="bad"} 1
upgradeguard_fake{from="good"} 1
upgradeguard_fake{from="nodata"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "upgradeguard_collector_success", "upgradeguard_fake"); err != nil {
		t.Error(err)
	}
	if got, err := testutil.GatherAndCount(reg, "upgradeguard_collector_duration_seconds"); err != nil || got != 3 {
		t.Errorf("duration samples = %d (%v), want 3", got, err)
	}
	if got := set.Names(); strings.Join(got, ",") != "bad,good,nodata" {
		t.Errorf("Names() = %v", got)
	}
}

// dupCollector sends one series twice, as two AWS targets without their
// account and region labels did, and a metric that does not write.
type dupCollector struct{ invalid bool }

var badDesc = prometheus.NewDesc("upgradeguard_fake_bad", "A metric with a label missing.", []string{"a", "b"}, nil)

func (d dupCollector) Update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(fakeDesc, prometheus.GaugeValue, 1, "dup")
	ch <- prometheus.MustNewConstMetric(fakeDesc, prometheus.GaugeValue, 2, "dup")
	ch <- prometheus.MustNewConstMetric(fakeDesc, prometheus.GaugeValue, 3, "other")
	if d.invalid {
		ch <- prometheus.NewInvalidMetric(badDesc, errors.New("label b missing"))
	}
	return nil
}

// A duplicate series, or a metric the registry cannot write, is the
// collector's failure: success 0, and Gather succeeds with the first series
// kept, instead of failing with "collected before with the same name and
// label values" while success says 1.
func TestSetDuplicateSeriesFailsTheCollector(t *testing.T) {
	for _, invalid := range []bool{false, true} {
		set := NewSet(map[string]Collector{
			"dup":  dupCollector{invalid: invalid},
			"good": fakeCollector{name: "good"},
		}, slog.New(slog.DiscardHandler))
		reg := prometheus.NewRegistry()
		reg.MustRegister(set)
		want := `
# HELP upgradeguard_collector_success Whether a collector's data was complete and fresh during this scrape (1) or not (0).
# TYPE upgradeguard_collector_success gauge
upgradeguard_collector_success{collector="dup"} 0
upgradeguard_collector_success{collector="good"} 1
# HELP upgradeguard_fake A fake metric.
# TYPE upgradeguard_fake gauge
upgradeguard_fake{from="dup"} 1
upgradeguard_fake{from="good"} 1
upgradeguard_fake{from="other"} 3
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "upgradeguard_collector_success", "upgradeguard_fake"); err != nil {
			t.Errorf("invalid metric %v: %v", invalid, err)
		}
		if _, err := reg.Gather(); err != nil {
			t.Errorf("invalid metric %v: Gather: %v", invalid, err)
		}
	}
	if err := checked(dupCollector{}, make(chan prometheus.Metric, 10)); err == nil || !strings.Contains(err.Error(), `duplicate series upgradeguard_fake{from="dup"}`) {
		t.Errorf("checked() = %v, want the duplicate named", err)
	}
}
