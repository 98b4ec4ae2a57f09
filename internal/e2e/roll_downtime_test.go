package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestRollDowntimeReport: the roll's downtime report,
// with the roll's own RBAC (deploy/roll/rbac.yaml). A clean roll of a
// group whose Service keeps ready endpoints (3 replicas, a PDB of
// maxUnavailable 1) reports zero downtime; a roll of a one-node group whose
// Service has its only endpoint there (1 replica, no PDB) reports that
// Service and the seconds it had none - the pod waits, Pending, for the
// replacement node.
func TestRollDowntimeReport(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	srv, err := awsfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	acct := srv.Account()
	acct.SetTiming(awsfake.Timing{LaunchDelay: 2 * time.Second})
	backed := tb.BackInstances(ctx, acct, nil)
	tags := map[string]string{"kubernetes.io/cluster/testbed": "owned"}
	sub, err := acct.AddSubnet(awsfake.SubnetSpec{CIDR: "10.1.0.0/24", AZ: "eu-west-1a", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := acct.AddLaunchTemplate("nodes", awsfake.LaunchTemplateData{InstanceType: "m5.large"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int32{"nodes-steady": 2, "nodes-solo": 1} {
		if _, err := acct.AddASG(awsfake.ASGSpec{Name: name, LaunchTemplate: lt.ID, Min: 1, Max: size + 1, Desired: size, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}

	// A probe the gate and the roll both request: a local server that
	// always answers.
	probed := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer probed.Close()
	e := &rollEnv{t: t, tb: tb, bin: bin, aws: srv}
	e.kubeconfig = rollKubeconfig(ctx, t, tb)
	dir := t.TempDir()
	e.policy = filepath.Join(dir, "policy.yml")
	policy := rollPolicy + fmt.Sprintf("probes:\n- name: shop\n  url: %s\n", probed.URL)
	if err := os.WriteFile(e.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}

	one := intstr.FromInt32(1)
	steady := testbed.Workload{Namespace: "shop", Name: "steady", Replicas: 3, MaxUnavailable: &one, Service: true,
		NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: "nodes-steady"}}
	solo := testbed.Workload{Namespace: "shop", Name: "solo", Replicas: 1, Service: true,
		NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: "nodes-solo"}}
	for _, w := range []testbed.Workload{steady, solo} {
		if err := tb.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	startExporter(t, tb, bin, "")
	err = testbed.WaitFor(ctx, 4*time.Minute, "the workloads ready and both Services' ready endpoints in Thanos", func(ctx context.Context) (bool, error) {
		for _, w := range []testbed.Workload{steady, solo} {
			pods, err := readyPods(ctx, e, w.Namespace, w.Name)
			if err != nil || len(pods) != int(w.Replicas) {
				return false, fmt.Errorf("%s: %d ready pods (%v)", w.Name, len(pods), err)
			}
		}
		r, err := tb.QueryThanos(ctx, `upgradeguard_service_endpoints{namespace="shop",ready="true"} > 0`, true)
		return err == nil && len(r) == 2, fmt.Errorf("%d Services with ready endpoints (%v)", len(r), err)
	})
	if err != nil {
		t.Fatal(err)
	}

	rollWithReport := func(t *testing.T, group string) *roll.DowntimeReport {
		e.t = t
		file := filepath.Join(t.TempDir(), "report.json")
		run := e.start(ctx, e.policy, "--nodegroup", group, "--gate-timeout", "5m", "--report", file, "--sample-interval", "1s")
		if code := run.exitCode(); code != 0 {
			t.Fatalf("roll of %s exited %d:\n%s", group, code, run.tail())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v\n%s", err, run.tail())
		}
		var r roll.DowntimeReport
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		md, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".md")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s roll: %s\n%s", group, r.Verdict(), md)
		if !strings.Contains(run.out.String(), r.Verdict()) {
			t.Errorf("the roll did not print the report's verdict %q:\n%s", r.Verdict(), run.tail())
		}
		return &r
	}

	t.Run("clean roll: zero downtime", func(t *testing.T) {
		r := rollWithReport(t, "nodes-steady")
		if !r.ZeroDowntime || r.UnobservedSeconds != 0 {
			t.Errorf("report %+v; want zero downtime", r)
		}
		if len(r.Nodes) != 2 || r.Nodes[0].Drain == 0 || r.Nodes[0].Replace == 0 {
			t.Errorf("nodes %+v; want the 2 nodes' step timings", r.Nodes)
		}
		for _, s := range r.Services {
			if s.Service == "steady" && s.MinReady < 2 {
				t.Errorf("shop/steady %+v: fewer than 2 ready under a budget of maxUnavailable 1", s)
			}
		}
		if len(r.Probes) != 1 || r.Probes[0].Requests == 0 || r.Probes[0].Failed+r.Probes[0].Timeouts != 0 {
			t.Errorf("probes %+v; want requests, none failed", r.Probes)
		}
	})

	t.Run("the only endpoint on the rolled node: the Service and its seconds without", func(t *testing.T) {
		r := rollWithReport(t, "nodes-solo")
		if r.ZeroDowntime {
			t.Fatalf("report %+v says zero downtime", r)
		}
		w := r.Services[0]
		// The pod is Pending from its eviction until the replacement node
		// (launched 2s after the termination) is Ready: seconds, at least one
		// sample's interval.
		if w.Namespace != "shop" || w.Service != "solo" || w.MinReady != 0 || w.NoReadySeconds < 1 || w.Outages != 1 || w.NoReadyAtEnd {
			t.Errorf("worst Service %+v; want shop/solo with seconds without endpoints in one outage, back at the end", w)
		}
		if !strings.Contains(r.Verdict(), "worst shop/solo") {
			t.Errorf("verdict %q does not name shop/solo", r.Verdict())
		}
		for _, s := range r.Services[1:] {
			if s.NoReadySeconds > 0 {
				t.Errorf("%s/%s had %vs without endpoints in a roll of the other group", s.Namespace, s.Service, s.NoReadySeconds)
			}
		}
	})
}
