package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/upgradeguard/upgradeguard/internal/gate"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestGateAvailability is the gate's availability check end to end: a
// Service whose only endpoint sits on one node (1 replica, no PDB). Draining
// that node leaves the Service without a ready endpoint, and the gate, asked
// about the next node, says WAIT with availability/services failing, until
// the pod runs again. A probe of a local HTTP server that starts failing
// makes the gate WAIT too.
func TestGateAvailability(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	const host, next = "node-a", "node-b"
	for _, n := range []string{host, next} {
		if err := tb.CreateNode(ctx, testbed.Node{Name: n, Zone: "eu-west-1a", InstanceType: "m5.large", NodeGroup: "nodes"}); err != nil {
			t.Fatal(err)
		}
		if err := testbed.WaitFor(ctx, 2*time.Minute, n+" Ready", tb.NodeReady(n, corev1.ConditionTrue)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "avail", Name: "solo", Replicas: 1, Service: true,
		NodeSelector: map[string]string{corev1.LabelHostname: host}}); err != nil {
		t.Fatal(err)
	}

	// The endpoint a probe asks: healthy until failing is set.
	var failingProbe atomic.Bool
	probed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failingProbe.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(probed.Close)

	startExporter(t, tb, bin, "")
	policy, err := gate.ParsePolicy(fmt.Appendf(nil, `matchers: 'cluster="testbed"'
interval: 1s
monitoring:
  watchdog: ""   # this testbed's Prometheus loads no rules
  aws_max_age: 0s
capacity:
  ips: false
  quotas: false
nodes:
  groups: false  # the exporter runs no AWS collector: no Auto Scaling series
probes:
- name: local
  url: %s/healthz
  timeout: 3s
`, probed.URL))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{URL: tb.ThanosQueryURL, QueryTimeout: 10 * time.Second}, policy,
		slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	// verdict waits until an evaluation for next has want and cond holds.
	verdict := func(what string, want gate.Verdict, timeout time.Duration, cond func(gate.Evaluation) error) gate.Evaluation {
		t.Helper()
		var last gate.Evaluation
		err := testbed.WaitFor(ctx, timeout, what, func(ctx context.Context) (bool, error) {
			e, err := g.Evaluate(ctx, next)
			if err != nil {
				return false, err
			}
			last = e
			if e.Verdict != want {
				return false, fmt.Errorf("verdict %s: %s", e.Verdict, strings.Join(e.Reasons(), "; "))
			}
			if cond != nil {
				return cond(e) == nil, cond(e)
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, table(last))
		}
		return last
	}
	row := func(e gate.Evaluation, name string) gate.CheckResult {
		for _, c := range e.Checks {
			if c.Name == name {
				return c
			}
		}
		return gate.CheckResult{}
	}
	// only accepts an evaluation whose reasons are the rows named.
	only := func(rows ...string) func(gate.Evaluation) error {
		return func(e gate.Evaluation) error {
			var bad []string
			for _, c := range e.Checks {
				if c.Status != gate.Pass && c.Status != gate.Skip {
					bad = append(bad, c.Name)
				}
			}
			if strings.Join(bad, ",") != strings.Join(rows, ",") {
				return fmt.Errorf("failing rows %v, want %v: %v", bad, rows, e.Reasons())
			}
			return nil
		}
	}

	e := verdict("GO on the healthy cluster", gate.GO, 4*time.Minute, func(e gate.Evaluation) error {
		if r := row(e, "availability/services"); r.Status != gate.Pass || r.Value == "0 judged" {
			return fmt.Errorf("availability/services %s %q: the Services are not judged yet", r.Status, r.Value)
		}
		return nil
	})
	t.Logf("healthy:\n%s", table(e))

	t.Run("a failing probe gives WAIT", func(t *testing.T) {
		failingProbe.Store(true)
		e := verdict("WAIT on the probe", gate.WAIT, time.Minute, only("probe/local"))
		if r := row(e, "probe/local"); !strings.Contains(r.Why, "503") {
			t.Errorf("probe/local: %+v", r)
		}
		failingProbe.Store(false)
		verdict("GO once the probe answers", gate.GO, time.Minute, nil)
	})

	t.Run("a Service left without a ready endpoint by a drain gives WAIT for the next node", func(t *testing.T) {
		// Drain the host as kubectl does: cordon, then evict. The
		// replacement pod is pinned to the cordoned host: Pending.
		if _, err := tb.Client.CoreV1().Nodes().Patch(ctx, host, types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		pods, err := tb.Client.CoreV1().Pods("avail").List(ctx, metav1.ListOptions{LabelSelector: "app=solo"})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("pods of avail/solo: %v (%v)", pods, err)
		}
		p := pods.Items[0]
		if err := tb.Client.CoreV1().Pods("avail").EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		e := verdict("WAIT on avail/solo without a ready endpoint", gate.WAIT, 2*time.Minute, func(e gate.Evaluation) error {
			r := row(e, "availability/services")
			if r.Status != gate.Fail || !strings.Contains(r.Why, "service avail/solo has no ready endpoint (1 in the last 10m0s)") {
				return fmt.Errorf("availability/services %s %q", r.Status, r.Why)
			}
			// The Deployment (1 replica, maxUnavailable 25%: 0) is below its promise too.
			if w := row(e, "availability/workloads"); w.Status != gate.Fail || !strings.Contains(w.Why, "deployment avail/solo has 0 available, needs 1") {
				return fmt.Errorf("availability/workloads %s %q", w.Status, w.Why)
			}
			return only("availability/services", "availability/workloads")(e)
		})
		t.Logf("MEASURED the gate saw the Service without endpoints %s after the eviction:\n%s", time.Since(began).Round(time.Second), table(e))
		// The pod runs again once the host is schedulable: GO.
		if _, err := tb.Client.CoreV1().Nodes().Patch(ctx, host, types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		verdict("GO once avail/solo has a ready endpoint again", gate.GO, 2*time.Minute, nil)
	})
}
