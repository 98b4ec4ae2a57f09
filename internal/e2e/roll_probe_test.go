package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

var (
	replacedLine = regexp.MustCompile(`\] (\S+): replaced by `)
	probeWait    = regexp.MustCompile(`\] (\S+): gate WAIT, roll paused: [^\n]*probe/shop FAIL`)
)

// TestRollProbeFailingMidRoll: a probe against a local
// HTTP server that starts failing mid-roll pauses the roll. The server
// answers 200 until the first node of a 2-node group is replaced, then 503:
// the gate WAITs before the second node naming the probe, and the second
// node stays uncordoned for several gate intervals; answering 200 again
// resumes the roll, which completes, and its downtime report counts the
// failed probe requests.
func TestRollProbeFailingMidRoll(t *testing.T) {
	bin := testbed.BuildUpgradeguard(t)
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
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
	const group = "nodes-probed"
	if _, err := acct.AddASG(awsfake.ASGSpec{Name: group, LaunchTemplate: lt.ID, Min: 1, Max: 3, Desired: 2, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}

	// The probed server: 200 until failing is set, then 503. It counts the
	// 503s it sent (to the gate and to the roll's downtime sampler).
	var failing atomic.Bool
	var served503 atomic.Int64
	probed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			served503.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer probed.Close()

	e := &rollEnv{t: t, tb: tb, bin: bin, aws: srv}
	e.kubeconfig = rollKubeconfig(ctx, t, tb)
	dir := t.TempDir()
	e.policy = filepath.Join(dir, "policy.yml")
	// 3 consecutive passes, not 2: the gate lets the second node go no
	// sooner than 2 gate intervals after the first node is replaced, ample
	// time for the test to see that and flip the server on a loaded machine.
	policy := strings.Replace(rollPolicy, "consecutive: 2\n", "consecutive: 3\n", 1) +
		fmt.Sprintf("probes:\n- name: shop\n  url: %s\n  timeout: 2s\n", probed.URL)
	if err := os.WriteFile(e.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	startExporter(t, tb, bin, "")

	report := filepath.Join(dir, "report.json")
	run := e.start(ctx, e.policy, "--nodegroup", group, "--gate-timeout", "5m", "--report", report, "--sample-interval", "1s")
	defer func() {
		if t.Failed() {
			t.Logf("roll output:\n%s", run.tail())
		}
	}()
	// await polls the roll's output for re until the roll exits.
	await := func(timeout time.Duration, what string, re *regexp.Regexp) string {
		t.Helper()
		var m []string
		err := testbed.WaitFor(ctx, timeout, what, func(context.Context) (bool, error) {
			select {
			case <-run.done:
				return false, fmt.Errorf("the roll exited: %v", run.err)
			default:
			}
			m = re.FindStringSubmatch(run.out.String())
			return m != nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m[1]
	}

	// Flip as soon as the first node is replaced, well before the gate's
	// third consecutive pass for the second node.
	first := await(8*time.Minute, "the first node replaced", replacedLine)
	failing.Store(true)
	flipped := time.Now()
	second := await(2*time.Minute, "the gate's WAIT naming probe/shop", probeWait)
	t.Logf("first node %s replaced; probe failing; the gate WAITs before %s after %s", first, second, time.Since(flipped).Round(time.Millisecond))
	if second == first {
		t.Fatalf("the WAIT is about the node already replaced, %s", first)
	}
	if _, ok := e.groupNodes(ctx, group)[second]; !ok {
		t.Fatalf("the WAIT names %s, not a node of group %s", second, group)
	}

	// Paused: for several gate intervals, the second node stays schedulable
	// and the roll says nothing of cordoning it.
	hold := time.Now().Add(4 * gateInterval)
	for time.Now().Before(hold) {
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, second, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable || strings.Contains(run.out.String(), second+": cordoned") {
			t.Fatalf("node %s cordoned while probe/shop fails", second)
		}
		select {
		case <-run.done:
			t.Fatalf("the roll exited while probe/shop fails: %v", run.err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The pause is on record as a Warning Event on the node.
	evs, err := tb.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + second})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs.Items {
		if ev.Reason == roll.ReasonGate && ev.Type == "Warning" && strings.Contains(ev.Message, "probe/shop FAIL") {
			found = true
		}
	}
	if !found {
		t.Errorf("no Warning %s Event on %s naming probe/shop (%d Events)", roll.ReasonGate, second, len(evs.Items))
	}

	// Answering again resumes the roll, which completes.
	failing.Store(false)
	failedFor := time.Since(flipped)
	await(2*time.Minute, "the second node cordoned", regexp.MustCompile(`\] (`+regexp.QuoteMeta(second)+`): cordoned`))
	select {
	case <-run.done:
	case <-time.After(10 * time.Minute):
		t.Fatal("the roll did not finish within 10 minutes of the probe answering again")
	}
	if code := run.exitCode(); code != 0 {
		t.Fatalf("roll exited %d", code)
	}
	out := run.out.String()
	if !strings.Contains(out, second+": gate GO again, resuming") && !strings.Contains(out, second+": gate passing again") {
		t.Errorf("the roll did not say it resumed before %s", second)
	}

	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var r roll.DowntimeReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("probe failing for %s (%d 503s served); report: %s; probes %+v", failedFor.Round(time.Millisecond), served503.Load(), r.Verdict(), r.Probes)
	if len(r.Nodes) != 2 {
		t.Errorf("report nodes %+v; want both nodes", r.Nodes)
	}
	// The sampler requests the probe every second: the pause of over 4 gate
	// intervals (12s) holds several failed requests of its own; the 503s
	// served also went to the gate, so they bound the count from above.
	if len(r.Probes) != 1 || r.Probes[0].Probe != "shop" || r.Probes[0].Failed < 3 || int64(r.Probes[0].Failed) > served503.Load() ||
		r.Probes[0].Timeouts != 0 || !strings.Contains(r.Probes[0].LastError, "503") {
		t.Errorf("probes %+v; want shop with at least 3 failed requests (of %d 503s served), none timed out, last error a 503", r.Probes, served503.Load())
	}
	if r.ZeroDowntime || !strings.Contains(r.Verdict(), "shop") {
		t.Errorf("verdict %q (zero downtime %v); want downtime naming probe shop", r.Verdict(), r.ZeroDowntime)
	}
}
