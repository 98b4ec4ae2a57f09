package exporter

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// TestClusterLabel serves /metrics as Run does with --cluster and checks
// that every upgradeguard series carries the cluster label: those of the
// families rendered at watch time (nodes), which the registry does not
// wrap, as well as the others. The body must parse, with no family twice.
func TestClusterLabel(t *testing.T) {
	const cluster = `prod "eu-west-1"`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := parseFlags(t, "--cluster="+cluster)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	informers := kube.NewInformers(fake.NewClientset(shardCluster()...), kube.Options{NodeLabels: cfg.Nodes.NodeLabels()}, logger)
	reg := prometheus.NewRegistry()
	r := prometheus.WrapRegistererWith(prometheus.Labels{"cluster": cfg.Cluster}, reg)
	set, _, err := newSet(ctx, cfg, informers, nil, r, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(set); err != nil {
		t.Fatal(err)
	}
	informers.Start(ctx)
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	if err := informers.WaitForSync(syncCtx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(reg, set.Writers(), informers.Synced, logger))
	defer srv.Close()

	// The informers' handlers may still be rendering the last nodes.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := get(t, srv, "/metrics")
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("parsing /metrics: %v\n%s", err, body)
		}
		if n := len(mfs["upgradeguard_node_ready"].GetMetric()); n < 12 || len(mfs["upgradeguard_node_heartbeat_age_seconds"].GetMetric()) < 12 {
			if time.Now().After(deadline) {
				t.Fatalf("/metrics has %d of 12 nodes' series:\n%s", n, body)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		for name, mf := range mfs {
			if !strings.HasPrefix(name, "upgradeguard_") || name == "upgradeguard_build_info" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if labelValue(m.GetLabel(), "cluster") != cluster {
					t.Errorf("%s %v: no cluster=%q", name, m.GetLabel(), cluster)
				}
			}
		}
		return
	}
}

func labelValue(labels []*dto.LabelPair, name string) string {
	for _, l := range labels {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
