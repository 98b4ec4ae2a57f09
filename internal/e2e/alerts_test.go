package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/alerts"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestAlertsFireInTestbed loads the generated rules into the testbed's two
// Prometheus replicas and plays a real drain-blocking scenario: a PDB at 0
// disruptions allowed, held past the alert's `for` (shortened to 30s), then
// its node cordoned. The alerts must fire, and resolve when the PDB lets the
// node drain, as seen through Thanos Query's deduplicated ALERTS series.
func TestAlertsFireInTestbed(t *testing.T) {
	const (
		pdbAlert     = "UpgradeGuardPDBDisruptionsNotAllowed"
		cordonAlert  = "UpgradeGuardCordonedNodeDrainBlocked"
		forDuration  = 30 * time.Second
		exporterJob  = "upgradeguard"
		blockingNode = "node-a"
	)
	o := alerts.DefaultOptions()
	o.ExporterJob = exporterJob
	o.For = map[string]time.Duration{pdbAlert: forDuration, cordonAlert: forDuration}
	rules, err := alerts.RuleFileYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	ruleFile := filepath.Join(t.TempDir(), "upgradeguard-rules.yaml")
	if err := os.WriteFile(ruleFile, rules, 0o644); err != nil {
		t.Fatal(err)
	}

	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, RuleFiles: []string{ruleFile}})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	t.Run("both replicas load every rule", func(t *testing.T) {
		want := len(alerts.List(o)) + len(alerts.Records(o))
		for _, url := range tb.PrometheusURLs {
			n, health, err := loadedRules(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if n != want || len(health) > 0 {
				t.Errorf("%s: %d rules loaded, want %d; unhealthy: %v", url, n, want, health)
			}
		}
	})

	for _, name := range []string{blockingNode, "node-b"} {
		if err := tb.CreateNode(ctx, testbed.Node{Name: name, Zone: "eu-west-1a", InstanceType: "m5.large", NodeGroup: "nodes-blue"}); err != nil {
			t.Fatal(err)
		}
	}
	zero, one := intstr.FromInt32(0), intstr.FromInt32(1)
	for _, w := range []testbed.Workload{
		// Blocks every drain of node-a: maxUnavailable 0.
		{Namespace: "shop", Name: "frozen", Replicas: 2, MaxUnavailable: &zero,
			NodeSelector: map[string]string{corev1.LabelHostname: blockingNode}},
		// Allows one disruption: no alert.
		{Namespace: "shop", Name: "web", Replicas: 2, MaxUnavailable: &one,
			NodeSelector: map[string]string{corev1.LabelHostname: "node-b"}},
	} {
		if err := tb.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}

	startExporter(t, tb, bin, "") // scraped as exporterJob

	firing := func(alertname string) string {
		return fmt.Sprintf(`ALERTS{alertname=%q, alertstate="firing"}`, alertname)
	}

	t.Run("a PDB at 0 disruptions allowed past the for fires", func(t *testing.T) {
		var got []testbed.Sample
		err := testbed.WaitFor(ctx, 4*time.Minute, pdbAlert+" firing for shop/frozen through Thanos Query", func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, firing(pdbAlert), true)
			if err != nil {
				return false, err
			}
			got = r
			return len(r) > 0, fmt.Errorf("%d firing series", len(r))
		})
		if err != nil {
			t.Fatal(err)
		}
		seen := time.Now()
		if len(got) != 1 {
			t.Fatalf("%s firing series: %v, want one (shop/frozen; shop/web allows a disruption)", pdbAlert, got)
		}
		m := got[0].Metric
		if m["namespace"] != "shop" || m["pdb"] != "frozen" || m["severity"] != "warning" || m["job"] != exporterJob {
			t.Errorf("firing alert labels %v, want namespace=shop pdb=frozen severity=warning job=%s", m, exporterJob)
		}
		if _, ok := m["replica"]; ok {
			t.Errorf("deduplicated ALERTS still has the replica label: %v", m)
		}
		// ALERTS_FOR_STATE holds when the alert became active: it fired no
		// sooner than its `for` after that.
		fs, err := tb.QueryThanos(ctx, fmt.Sprintf(`ALERTS_FOR_STATE{alertname=%q, pdb="frozen"}`, pdbAlert), true)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 {
			t.Fatalf("ALERTS_FOR_STATE: %v, want one series", fs)
		}
		active := time.Unix(int64(fs[0].Value), 0)
		if held := seen.Sub(active); held < forDuration {
			t.Errorf("firing %s after becoming active, before its for of %s", held, forDuration)
		}
		// Each replica evaluates the rules itself, on its own schedule: the
		// second one fires within an evaluation interval or two.
		err = testbed.WaitFor(ctx, 30*time.Second, "both replicas' firing series without deduplication", func(ctx context.Context) (bool, error) {
			both, err := tb.QueryThanos(ctx, firing(pdbAlert), false)
			if err != nil {
				return false, err
			}
			return len(both) == 2, fmt.Errorf("%d firing series, want one per replica: %v", len(both), both)
		})
		if err != nil {
			t.Error(err)
		}
		// The recording rule the gate reads counts it.
		r, err := tb.QueryThanos(ctx, alerts.RecordPDBsBlocking, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) != 1 || r[0].Value != 1 {
			t.Errorf("%s = %v, want one series of value 1", alerts.RecordPDBsBlocking, r)
		}
	})

	t.Run("cordoning the blocked node fires the drain alert", func(t *testing.T) {
		if _, err := tb.Client.CoreV1().Nodes().Patch(ctx, blockingNode, types.MergePatchType,
			[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		err := testbed.WaitFor(ctx, 3*time.Minute, cordonAlert+" firing for "+blockingNode, func(ctx context.Context) (bool, error) {
			r, err := tb.QueryThanos(ctx, firing(cordonAlert), true)
			if err != nil {
				return false, err
			}
			return len(r) == 1 && r[0].Metric["node"] == blockingNode && r[0].Value == 1,
				fmt.Errorf("firing series: %v", r)
		})
		if err != nil {
			t.Fatal(err)
		}
		// Both frozen pods; node-b's web PDB allows one of its two pods
		// (and node-b is not cordoned, so no alert there).
		r, err := tb.QueryThanos(ctx, alerts.RecordNodeDrainBlockedPods, true)
		if err != nil {
			t.Fatal(err)
		}
		blocked := map[string]float64{}
		for _, s := range r {
			blocked[s.Metric["node"]] = s.Value
		}
		if len(r) != 2 || blocked[blockingNode] != 2 || blocked["node-b"] != 1 {
			t.Errorf("%s = %v, want 2 pods on %s and 1 on node-b", alerts.RecordNodeDrainBlockedPods, r, blockingNode)
		}
	})

	// maxUnavailable 1 would still block the second pod until the first is
	// replaced; 2 lets the whole node drain.
	t.Run("relaxing the PDB so that the node can drain resolves both alerts", func(t *testing.T) {
		if _, err := tb.Client.PolicyV1().PodDisruptionBudgets("shop").Patch(ctx, "frozen", types.MergePatchType,
			[]byte(`{"spec":{"maxUnavailable":2}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{pdbAlert, cordonAlert} {
			err := testbed.WaitFor(ctx, 3*time.Minute, a+" no longer firing", func(ctx context.Context) (bool, error) {
				r, err := tb.QueryThanos(ctx, `ALERTS{alertname="`+a+`"}`, true)
				if err != nil {
					return false, err
				}
				return len(r) == 0, fmt.Errorf("still there: %v", r)
			})
			if err != nil {
				t.Error(err)
			}
		}
	})
}

// loadedRules asks a Prometheus for its rules: how many, and the errors of
// those whose last evaluation failed.
func loadedRules(ctx context.Context, base string) (int, []string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/rules", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("asking %s for its rules: %w", base, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, nil, fmt.Errorf("decoding the rules of %s: %w", base, err)
	}
	if body.Status != "success" {
		return 0, nil, fmt.Errorf("rules of %s: status %q", base, body.Status)
	}
	n := 0
	var bad []string
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" {
				bad = append(bad, g.Name+"/"+r.Name+": "+r.LastError)
			}
		}
	}
	return n, bad, nil
}
