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
