package exporter

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestShardsMetric: every exporter that serves per-node series (the nodes
// or the pdb collector) says which shard of how many it is, an unsharded
// one shard 0 of 1, with --cluster's label as Run registers it; an
// exporter of the AWS collectors alone (run unsharded beside the shards)
// says nothing, so that it never stands for a shard covering every node.
func TestShardsMetric(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" : no series
	}{
		{nil, `upgradeguard_exporter_total_shards{cluster="prod",shard="0"} 1`},
		{[]string{"--shard=1", "--total-shards=2"}, `upgradeguard_exporter_total_shards{cluster="prod",shard="1"} 2`},
		{[]string{"--shard=0", "--total-shards=3", "--no-collector.nodes"}, `upgradeguard_exporter_total_shards{cluster="prod",shard="0"} 3`},
		{[]string{"--no-collector.nodes", "--no-collector.pdb", "--no-collector.workloads", "--collector.cni", "--collector.awsquota"}, ""},
	} {
		cfg, err := parseFlags(t, append(tc.args, "--cluster=prod")...)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.validateShard(); err != nil {
			t.Fatal(err)
		}
		c := shardCollector(cfg)
		if tc.want == "" {
			if c != nil {
				t.Errorf("%v: an exporter without the nodes and pdb collectors serves %s", tc.args, ShardsMetric)
			}
			continue
		}
		if c == nil {
			t.Fatalf("%v: no %s", tc.args, ShardsMetric)
		}
		reg := prometheus.NewPedanticRegistry()
		prometheus.WrapRegistererWith(prometheus.Labels{"cluster": cfg.Cluster}, reg).MustRegister(c)
		want := "# HELP " + ShardsMetric + " " + shardsHelp + "\n# TYPE " + ShardsMetric + " gauge\n" + tc.want + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), ShardsMetric); err != nil {
			t.Errorf("%v: %v", tc.args, err)
		}
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
			t.Errorf("%v: lint: %v %v", tc.args, problems, err)
		}
	}
}
