package exporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// ShardsMetric says which shard of how many an exporter serves. Its value
// is --total-shards and its shard label --shard, so that a rule can
// compare the shards that report with the number expected (PromQL cannot
// read a number out of a label): without it, a shard whose target has
// gone from service discovery leaves no series at all, not even up 0, and
// its nodes vanish from every per-node query. kube-state-metrics exports
// the same as kube_state_metrics_total_shards.
const ShardsMetric = "upgradeguard_exporter_total_shards"

// shardsHelp is ShardsMetric's HELP.
const shardsHelp = "The number of exporters the cluster's nodes are split across (--total-shards; 1 when unsharded), with the shard this exporter serves (--shard) as the shard label; shard 0 also serves the cluster-wide series."

var shardsDesc = prometheus.NewDesc(ShardsMetric, shardsHelp, []string{"shard"}, nil)

// shardCollector serves ShardsMetric for an exporter whose series are split
// by node: one running the nodes or the pdb collector. nil for an exporter
// of the other collectors alone (the AWS collectors run unsharded beside
// the shards), which must not count as a shard covering every node.
func shardCollector(cfg *Config) prometheus.Collector {
	split := false
	for _, name := range []string{"nodes", "pdb"} {
		if on := cfg.enabled[name]; on != nil && *on {
			split = true
		}
	}
	if !split {
		return nil
	}
	total := cfg.Shard.Total
	if total < 1 {
		total = 1 // the zero Shard keeps everything
	}
	return shardGauge{index: cfg.Shard.Index, total: total}
}

// shardGauge is ShardsMetric's collector.
type shardGauge struct{ index, total int }

func (s shardGauge) Describe(ch chan<- *prometheus.Desc) { ch <- shardsDesc }

func (s shardGauge) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(shardsDesc, prometheus.GaugeValue, float64(s.total), strconv.Itoa(s.index))
}
