// Package collectors runs upgradeguard's collector families for one scrape,
// concurrently, and reports each one's duration and success, in the manner of
// node_exporter. The families live in the sub-packages.
package collectors

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

// Namespace prefixes every upgradeguard metric.
const Namespace = "upgradeguard"

var (
	durationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "collector", "duration_seconds"),
		"Time a collector took to produce its metrics during this scrape.",
		[]string{"collector"}, nil)
	successDesc = prometheus.NewDesc(
		prometheus.BuildFQName(Namespace, "collector", "success"),
		"Whether a collector's data was complete and fresh during this scrape (1) or not (0).",
		[]string{"collector"}, nil)
)

// ErrNoData is returned by a collector that has nothing to report this time,
// without that being a failure.
var ErrNoData = errors.New("collector returned no data")

// Collector is one family of metrics. Update sends what it knows to ch and
// returns an error when that is incomplete or stale; it may send metrics and
// still return an error (the last known state is better than nothing, and
// success 0 says not to trust it).
//
// A collector whose metrics are rendered at watch time also implements
// metricstore.Writer: its Update then only brings what it keeps up to date
// and reports its health, and the exporter's handler writes its families
// after the registry's (Set.Writers).
type Collector interface {
	Update(ch chan<- prometheus.Metric) error
}

// Set is the prometheus.Collector that runs the enabled collectors.
type Set struct {
	collectors map[string]Collector
	logger     *slog.Logger
}

// NewSet returns a Set of the named collectors.
func NewSet(collectors map[string]Collector, logger *slog.Logger) *Set {
	return &Set{collectors: collectors, logger: logger}
}

// Names returns the collectors in the set, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.collectors))
	for n := range s.collectors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Writers returns the collectors that write their own rendered families
// (metricstore.Writer), in the order of their names. The exporter's handler
// writes them after gathering the registry, where the Set's Collect has
// run their Update.
func (s *Set) Writers() []metricstore.Writer {
	var ws []metricstore.Writer
	for _, n := range s.Names() {
		if w, ok := s.collectors[n].(metricstore.Writer); ok {
			ws = append(ws, w)
		}
	}
	return ws
}

// Describe sends the descriptors of the per-collector metrics only: the
// families' metrics depend on the cluster, so the Set is an unchecked collector.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	ch <- durationDesc
	ch <- successDesc
}

// Collect runs every collector concurrently.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for name, c := range s.collectors {
		wg.Go(func() { s.run(name, c, ch) })
	}
	wg.Wait()
}

func (s *Set) run(name string, c Collector, ch chan<- prometheus.Metric) {
	begin := time.Now()
	err := checked(c, ch)
	duration := time.Since(begin)
	success := 1.0
	switch {
	case err == nil:
		s.logger.Debug("collector succeeded", "collector", name, "duration_seconds", duration.Seconds())
	case errors.Is(err, ErrNoData):
		s.logger.Debug("collector returned no data", "collector", name, "duration_seconds", duration.Seconds(), "err", err)
	default:
		success = 0
		s.logger.Error("collector failed", "collector", name, "duration_seconds", duration.Seconds(), "err", err)
	}
	ch <- prometheus.MustNewConstMetric(durationDesc, prometheus.GaugeValue, duration.Seconds(), name)
	ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, success, name)
}

// checked runs c's Update and forwards its metrics to ch, except those the
// registry would reject at Gather: a metric that does not write, and a
// series (name and label values) c already sent this scrape. Those are
// dropped and make the error, so that the collector's success is 0 rather
// than the registry's Gather failing with a log line only.
func checked(c Collector, ch chan<- prometheus.Metric) error {
	in := make(chan prometheus.Metric, 64)
	done := make(chan error, 1)
	go func() {
		seen := map[string]bool{}
		var problems []error
		dup := 0
		for m := range in {
			key, err := seriesKey(m)
			switch {
			case err != nil:
				problems = append(problems, fmt.Errorf("invalid metric %s: %w", m.Desc(), err))
			case seen[key]:
				if dup == 0 {
					problems = append(problems, fmt.Errorf("duplicate series %s", key))
				}
				dup++
			default:
				seen[key] = true
				ch <- m
			}
		}
		if dup > 1 {
			problems = append(problems, fmt.Errorf("%d duplicate series in all, dropped", dup))
		}
		done <- errors.Join(problems...)
	}()
	err := c.Update(in)
	close(in)
	return errors.Join(err, <-done)
}

// seriesKey is a metric's name and label pairs, the identity the registry
// checks for duplicates.
func seriesKey(m prometheus.Metric) (string, error) {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		return "", err
	}
	var b strings.Builder
	if n := descName.FindStringSubmatch(m.Desc().String()); n != nil {
		b.WriteString(n[1])
	} else {
		b.WriteString(m.Desc().String())
	}
	labels := pb.GetLabel()
	sort.Slice(labels, func(i, j int) bool { return labels[i].GetName() < labels[j].GetName() })
	b.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
	}
	b.WriteByte('}')
	return b.String(), nil
}

// descName reads the metric name out of a Desc, whose String is the only
// accessor client_golang gives: `Desc{fqName: "name", help: ...}`.
var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

// AsPrometheus adapts a single Collector to prometheus.Collector, for tests
// and linting: Describe runs a collection, and Update's error is reported
// through onErr. The rendered families of a collector that is also a
// metricstore.Writer are parsed back and sent too, so that tests compare
// them as they would any metric.
func AsPrometheus(c Collector, onErr func(error)) prometheus.Collector {
	return adapter{c: c, onErr: onErr}
}

type adapter struct {
	c     Collector
	onErr func(error)
}

func (a adapter) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(a, ch) }

func (a adapter) Collect(ch chan<- prometheus.Metric) {
	if err := a.c.Update(ch); err != nil && a.onErr != nil {
		a.onErr(err)
	}
	w, ok := a.c.(metricstore.Writer)
	if !ok {
		return
	}
	mfs, err := metricstore.Gatherer(w).Gather()
	if err != nil {
		if a.onErr != nil {
			a.onErr(err)
		}
		return
	}
	for _, mf := range mfs {
		names := make([]string, 0, 4)
		if len(mf.Metric) > 0 {
			for _, l := range mf.Metric[0].Label {
				names = append(names, l.GetName())
			}
		}
		desc := prometheus.NewDesc(mf.GetName(), mf.GetHelp(), names, nil)
		for _, m := range mf.Metric {
			ch <- parsedMetric{desc: desc, m: m}
		}
	}
}

// parsedMetric is a sample parsed from rendered text, as a prometheus.Metric.
type parsedMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (p parsedMetric) Desc() *prometheus.Desc { return p.desc }

func (p parsedMetric) Write(out *dto.Metric) error {
	out.Label, out.Gauge, out.Counter, out.Untyped = p.m.Label, p.m.Gauge, p.m.Counter, p.m.Untyped
	return nil
}

// Multi is one collector made of several of the same family, e.g. one per
// AWS account and region.
type Multi []Collector

// Update runs each collector and joins their errors.
func (m Multi) Update(ch chan<- prometheus.Metric) error {
	var errs []error
	for _, c := range m {
		if err := c.Update(ch); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// BoolFloat is a metric value for a condition: 1 when true, else 0.
func BoolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
