package exporter

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/collectors/awsquota"
	"github.com/upgradeguard/upgradeguard/collectors/cni"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/collectors/pdb"
	"github.com/upgradeguard/upgradeguard/collectors/workloads"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
)

// Describe sends the descriptor of every metric the exporter can serve with
// every collector enabled: the families' metrics, the Set's per-collector
// metrics, the AWS request and refresh metrics, the exporter's shard
// (ShardsMetric), and client_golang's Go, process and build information
// metrics that Run registers.
func Describe(ch chan<- *prometheus.Desc) {
	nodes.Describe(ch)
	pdb.Describe(ch)
	workloads.Describe(ch)
	cni.Describe(ch)
	awsquota.Describe(ch)
	awsapi.Describe(ch)
	collectors.NewSet(nil, nil).Describe(ch)
	ch <- shardsDesc
	promcollectors.NewGoCollector().Describe(ch)
	promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}).Describe(ch)
	versioncollector.NewCollector("upgradeguard").Describe(ch)
}

// descName reads the metric name out of a Desc, whose String is the only
// accessor client_golang gives: `Desc{fqName: "name", help: ...}`.
var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)"`)

// MetricNames returns the names of every metric Describe describes, sorted
// and without duplicates. Counters carry their _total suffix as served.
func MetricNames() ([]string, error) {
	ch := make(chan *prometheus.Desc)
	go func() {
		Describe(ch)
		close(ch)
	}()
	var names []string
	var errs []error
	for d := range ch {
		if err := d.Err(); err != nil {
			errs = append(errs, fmt.Errorf("invalid metric descriptor %s: %w", d, err))
			continue
		}
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			errs = append(errs, fmt.Errorf("no metric name in descriptor %s", d))
			continue
		}
		names = append(names, m[1])
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("enumerating the exporter's metric names: %v", errs)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
