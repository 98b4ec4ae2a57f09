package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/upgradeguard/upgradeguard/internal/hold"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// karpenterDisruptedTaint is the taint Karpenter puts on a node it has
// decided to disrupt (v1.15.0 pkg/apis/v1/taints.go).
const karpenterDisruptedTaint = "karpenter.sh/disrupted"

// TestGateHoldKarpenter: gate hold against the
// testbed's real Karpenter v1.15.0 (kwok provider), with deploy/hold's RBAC.
//
// Pool "workers" (consolidation WhenEmptyOrUnderutilized after 5s,
// expireAfter Never, budgets [{nodes: "1"}, a scheduled zero]) runs a
// Deployment of 4 pods of 1 CPU, one per node (hostname anti-affinity),
// under a PDB of maxUnavailable 1. Pool "expiring" has expireAfter 60s.
//
//  1. The workers' template changes (drift) and, as soon as Karpenter has
//     tainted the first node karpenter.sh/disrupted, the alert fires: the
//     budgets go to zero; what Karpenter had started is let finish.
//  2. While held: the Deployment is scaled to 2 (two nodes empty). For
//     heldWindow no workers NodeClaim is disrupted (the set, deletion
//     timestamps, taints and karpenter_nodeclaims_disrupted_total agree) and
//     Karpenter says "No allowed disruptions ... due to blocking budget".
//  3. Meanwhile a NodeClaim of "expiring", created while held, is expired by
//     Karpenter anyway; the hold warned (Event, gauges).
//  4. The alert resolves: budgets restored exactly, the drifted nodes
//     replaced and the empty ones removed, the PDB respected throughout.
func TestGateHoldKarpenter(t *testing.T) {
	testStart := time.Now()
	bin := testbed.BuildUpgradeguard(t)
	rules := filepath.Join(t.TempDir(), "holdtest.rules.yml")
	if err := os.WriteFile(rules, []byte(holdRules), 0o644); err != nil {
		t.Fatal(err)
	}
	tb := testbed.ForTest(t, testbed.Options{Prometheus: true, Karpenter: true, RuleFiles: []string{rules}})
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	dyn, err := tb.NewDynamic()
	if err != nil {
		t.Fatal(err)
	}
	pools := dyn.Resource(testbed.NodePoolGVR)
	claims := dyn.Resource(testbed.NodeClaimGVR)

	// The pools. workers' budgets: at most one node at a time (so that a
	// drift started before the hold is one node, not all), and a zero
	// budget on a schedule that never comes during the test, to show the
	// restore is exact.
	if _, err := tb.CreateNodePool(ctx, "workers", map[string]any{
		"disruption": map[string]any{
			"consolidationPolicy": "WhenEmptyOrUnderutilized",
			"consolidateAfter":    "5s",
			"budgets": []any{
				map[string]any{"nodes": "1"},
				map[string]any{"nodes": "0", "reasons": []any{"Underutilized"}, "schedule": "0 3 1 1 *", "duration": "1h"},
			},
		},
		"template": map[string]any{"spec": map[string]any{"expireAfter": "Never"}},
	}); err != nil {
		t.Fatal(err)
	}
	const expireAfter = 60 * time.Second
	if _, err := tb.CreateNodePool(ctx, "expiring", map[string]any{
		"disruption": map[string]any{"consolidateAfter": "Never"},
		"template":   map[string]any{"spec": map[string]any{"expireAfter": expireAfter.String()}},
	}); err != nil {
		t.Fatal(err)
	}
	// As stored, with the CRD's defaults: what the restore must give back.
	original := map[string]any{}
	for _, name := range []string{"workers", "expiring"} {
		np, err := pools.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _, _ := unstructured.NestedFieldCopy(np.Object, "spec", "disruption", "budgets")
		original[name] = b
		t.Logf("%s: budgets as stored %s", name, asJSON(b))
	}

	// The workload: 4 pods of 1 CPU, one per node, PDB maxUnavailable 1.
	const ns, app = "default", "inflate"
	one := intstr.FromInt32(1)
	if _, err := tb.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := createSpread(ctx, tb, ns, app, "workers", 4); err != nil {
		t.Fatal(err)
	}
	var seenMu sync.Mutex // podsSeen: every inflate pod seen Ready
	podsSeen := map[types.UID]bool{}
	readyPods := func(ctx context.Context, app string) (int, []string, error) {
		l, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return 0, nil, err
		}
		n, nodes := 0, []string{}
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podIsReady(&p) {
				n++
				nodes = append(nodes, p.Spec.NodeName)
				seenMu.Lock()
				podsSeen[p.UID] = true
				seenMu.Unlock()
			}
		}
		return n, nodes, nil
	}
	if err := pollFast(ctx, 2*time.Minute, "4 inflate pods Running and Ready on 4 Karpenter nodes", func(ctx context.Context) (bool, error) {
		n, nodes, err := readyPods(ctx, app)
		return n == 4, fmt.Errorf("%d ready, on %v (%v)", n, nodes, err)
	}); err != nil {
		t.Fatal(err)
	}
	workerClaims := func(ctx context.Context) (map[string]unstructured.Unstructured, error) {
		l, err := claims.List(ctx, metav1.ListOptions{LabelSelector: hold.LabelNodePool + "=workers"})
		if err != nil {
			return nil, err
		}
		m := map[string]unstructured.Unstructured{}
		for _, c := range l.Items {
			m[c.GetName()] = c
		}
		return m, nil
	}
	initial, err := workerClaims(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("workers: %d NodeClaims %v", len(initial), slices.Sorted(maps.Keys(initial)))

	// The downtime sampler: every 200 ms, the inflate pods Ready against
	// the Deployment's replicas minus the PDB's maxUnavailable.
	var (
		sampleMu            sync.Mutex
		minReady, minMargin = 1 << 30, 1 << 30
		samples, belowPDB   int
		belowPDBAt          []string
	)
	samplerCtx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		for samplerCtx.Err() == nil {
			d, err1 := tb.Client.AppsV1().Deployments(ns).Get(samplerCtx, app, metav1.GetOptions{})
			n, _, err2 := readyPods(samplerCtx, app)
			if err1 == nil && err2 == nil {
				margin := n - (int(*d.Spec.Replicas) - 1)
				sampleMu.Lock()
				samples++
				minReady = min(minReady, n)
				minMargin = min(minMargin, margin)
				if margin < 0 {
					belowPDB++
					belowPDBAt = append(belowPDBAt, fmt.Sprintf("%s: %d ready of %d", time.Now().Format("15:04:05.000"), n, *d.Spec.Replicas))
				}
				sampleMu.Unlock()
			}
			select {
			case <-samplerCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	// The exporter and the fault switch in Thanos, then gate hold with
	// deploy/hold's RBAC and no leader election.
	startExporter(t, tb, bin, "")
	fault, stopFault, err := tb.ServeGauge("holdtest", "hold_test_fault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopFault)
	err = testbed.WaitFor(ctx, 3*time.Minute, "the exporter's nodes and the fault switch in Thanos", func(ctx context.Context) (bool, error) {
		n, err := tb.QueryThanos(ctx, `upgradeguard_node_ready`, true)
		if err != nil {
			return false, err
		}
		f, err := tb.QueryThanos(ctx, `hold_test_fault`, true)
		if err != nil {
			return false, err
		}
		return len(n) >= 4 && len(f) == 1, fmt.Errorf("%d node series, %d fault series", len(n), len(f))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "upgradeguard"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	applyYAML(ctx, t, tb, filepath.Join("..", "..", "deploy", "hold", "rbac.yaml"))
	policy := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(policy, []byte(holdPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	webAddr, healthAddr := freeAddr(t), freeAddr(t)
	proc, err := tb.StartProcess("upgradeguard-hold", []string{bin, "gate", "hold",
		"--kubeconfig", saKubeconfig(ctx, t, tb, "upgradeguard", "upgradeguard-hold"), "--query.url", tb.ThanosQueryURL, "--policy", policy,
		"--no-leader-elect", "--web.listen-address", webAddr, "--web.health-address", healthAddr,
		"--karpenter.nodepool", "workers", "--karpenter.nodepool", "expiring"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(proc.LogPath)
			s := string(b)
			if len(s) > 8000 {
				s = "..." + s[len(s)-8000:]
			}
			t.Logf("gate hold's log:\n%s", s)
		}
	})
	gateGO := func(ctx context.Context) (bool, error) {
		if exited, err := proc.Exited(); exited {
			t.Fatalf("gate hold exited: %v", err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+healthAddr+"/gate", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("/gate %s: %s", resp.Status, b)
	}
	if err := testbed.WaitFor(ctx, 2*time.Minute, "gate hold saying GO", gateGO); err != nil {
		t.Fatal(err)
	}
	for name, want := range original {
		if np, err := pools.Get(ctx, name, metav1.GetOptions{}); err != nil || !budgetsEqual(np, want) {
			t.Fatalf("%s changed before any alert (%v)", name, err)
		}
	}

	disruptedTotal := func(ctx context.Context, pool string) (float64, error) {
		body, err := karpenterMetrics(ctx, tb.KarpenterMetricsURL)
		if err != nil {
			return 0, err
		}
		return sumSeries(body, "karpenter_nodeclaims_disrupted_total", `nodepool="`+pool+`"`), nil
	}
	// nodesState is, for the workers' nodes, those tainted
	// karpenter.sh/disrupted; and the workers NodeClaims being deleted.
	taintedNodes := func(ctx context.Context) ([]string, error) {
		l, err := tb.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: hold.LabelNodePool + "=workers"})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, n := range l.Items {
			for _, tn := range n.Spec.Taints {
				if tn.Key == karpenterDisruptedTaint {
					out = append(out, n.Name)
				}
			}
		}
		return out, nil
	}
	deleting := func(cs map[string]unstructured.Unstructured) []string {
		var out []string
		for name, c := range cs {
			if c.GetDeletionTimestamp() != nil {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out
	}
	disruptedBefore, err := disruptedTotal(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}

	// 1. Drift, and the alert fires as soon as Karpenter has started.
	driftPatch := []byte(`{"spec":{"template":{"metadata":{"labels":{"upgradeguard.test/rev":"2"}}}}}`)
	if _, err := pools.Patch(ctx, "workers", types.MergePatchType, driftPatch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	drifted := time.Now()
	var firstTainted []string
	if err := pollFast(ctx, 90*time.Second, "a workers node tainted karpenter.sh/disrupted (drift started)", func(ctx context.Context) (bool, error) {
		firstTainted, err = taintedNodes(ctx)
		return len(firstTainted) > 0, err
	}); err != nil {
		t.Fatal(err)
	}
	fault.Store(1)
	faultAt := time.Now()
	t.Logf("measured: template changed -> first node tainted %s: %s (%v); fault switched on", karpenterDisruptedTaint, faultAt.Sub(drifted).Round(10*time.Millisecond), firstTainted)
	// Polled every 100 ms from the fault on: the alert's activeAt in
	// Prometheus, and when each pool's budgets read zero.
	var fired time.Time
	zeroAt := map[string]time.Time{}
	if err := pollFast(ctx, 2*time.Minute, "HoldTestFault firing and both pools' budgets at zero", func(ctx context.Context) (bool, error) {
		if fired.IsZero() {
			if at, err := firingSince(ctx, tb.PrometheusURLs[0], "HoldTestFault"); err == nil {
				fired = at
			}
		}
		for _, name := range []string{"workers", "expiring"} {
			if _, ok := zeroAt[name]; ok {
				continue
			}
			np, err := pools.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if budgetsEqual(np, []any{map[string]any{"nodes": "0"}}) {
				zeroAt[name] = time.Now()
			}
		}
		return !fired.IsZero() && len(zeroAt) == 2, fmt.Errorf("firing since %v, paused %v", fired, zeroAt)
	}); err != nil {
		t.Fatal(err)
	}
	pausedAt := time.Now()
	for _, name := range []string{"workers", "expiring"} {
		t.Logf("measured: alert firing (Prometheus activeAt) -> %s budgets [{nodes:\"0\"}]: %s (fault switched on -> activeAt %s, -> budgets zero %s)",
			name, zeroAt[name].Sub(fired).Round(10*time.Millisecond), fired.Sub(faultAt).Round(10*time.Millisecond), zeroAt[name].Sub(faultAt).Round(10*time.Millisecond))
	}

	// The NodeClaim of "expiring", created while held.
	if err := createSpread(ctx, tb, ns, "expiry", "expiring", 1); err != nil {
		t.Fatal(err)
	}
	var expiryClaim unstructured.Unstructured
	if err := pollFast(ctx, time.Minute, "a NodeClaim of expiring", func(ctx context.Context) (bool, error) {
		l, err := claims.List(ctx, metav1.ListOptions{LabelSelector: hold.LabelNodePool + "=expiring"})
		if err != nil || len(l.Items) == 0 {
			return false, err
		}
		expiryClaim = l.Items[0]
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("expiring: NodeClaim %s created %s while held, expireAfter %s", expiryClaim.GetName(), expiryClaim.GetCreationTimestamp().UTC().Format(time.RFC3339), expireAfter)

	// What Karpenter had started: let it finish (or not), then nothing moves.
	afterPause, err := workerClaims(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inFlight := deleting(afterPause)
	taintedAtPause, err := taintedNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var settled map[string]unstructured.Unstructured
	if err := pollFast(ctx, 2*time.Minute, "the disruptions Karpenter started before the pause finished", func(ctx context.Context) (bool, error) {
		settled, err = workerClaims(ctx)
		if err != nil {
			return false, err
		}
		tainted, err := taintedNodes(ctx)
		if err != nil {
			return false, err
		}
		d := deleting(settled)
		return len(d) == 0 && len(tainted) == 0, fmt.Errorf("deleting %v, tainted %v", d, tainted)
	}); err != nil {
		t.Fatal(err)
	}
	var replacedBeforePause, replacedAfterPause []string
	for name := range initial {
		if _, ok := afterPause[name]; !ok {
			replacedBeforePause = append(replacedBeforePause, name)
		} else if _, ok := settled[name]; !ok {
			replacedAfterPause = append(replacedAfterPause, name)
		}
	}
	t.Logf("measured: disruptions started before the pause: NodeClaims gone before the budgets reached zero %v, being deleted at that moment %v (nodes tainted %s then %v), gone after it %v; the in-flight ones settled %s after the pause",
		replacedBeforePause, inFlight, karpenterDisruptedTaint, taintedAtPause, replacedAfterPause, time.Since(pausedAt).Round(100*time.Millisecond))
	var stillDrifted []string
	for name := range settled {
		if _, ok := initial[name]; ok {
			stillDrifted = append(stillDrifted, name)
		}
	}
	sort.Strings(stillDrifted)
	if len(stillDrifted) == 0 {
		t.Fatalf("every drifted NodeClaim was replaced before the hold took effect: nothing left to hold (settled %v)", slices.Sorted(maps.Keys(settled)))
	}
	if err := pollFast(ctx, time.Minute, "the remaining old NodeClaims Drifted", func(ctx context.Context) (bool, error) {
		cs, err := workerClaims(ctx)
		if err != nil {
			return false, err
		}
		for _, name := range stillDrifted {
			if !conditionTrue(cs[name], "Drifted") {
				return false, fmt.Errorf("NodeClaim %s not Drifted", name)
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}

	// 2. Consolidation too: two of the four nodes become empty.
	if _, err := tb.Client.AppsV1().Deployments(ns).Patch(ctx, app, types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pollFast(ctx, time.Minute, "inflate scaled to 2", func(ctx context.Context) (bool, error) {
		l, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		return err == nil && len(l.Items) == 2, fmt.Errorf("%d pods (%v)", len(l.Items), err)
	}); err != nil {
		t.Fatal(err)
	}
	_, podNodes, _ := readyPods(ctx, app)
	held, err := workerClaims(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var empty []string
	for name, c := range held {
		node, _, _ := unstructured.NestedString(c.Object, "status", "nodeName")
		if !slices.Contains(podNodes, node) {
			empty = append(empty, name)
		}
	}
	sort.Strings(empty)
	heldSet := slices.Sorted(maps.Keys(held))
	t.Logf("held: workers NodeClaims %v, of which drifted %v and empty %v", heldSet, stillDrifted, empty)
	disruptedHeldStart, err := disruptedTotal(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}

	// The held window: longer than several of Karpenter's 10 s disruption
	// polls and than consolidateAfter.
	const heldWindow = 50 * time.Second
	windowStart := time.Now()
	var violations []string
	for time.Since(windowStart) < heldWindow {
		cs, err := workerClaims(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(cs)); !slices.Equal(got, heldSet) {
			violations = append(violations, fmt.Sprintf("%s: NodeClaims %v, want %v", time.Since(windowStart).Round(time.Second), got, heldSet))
		}
		if d := deleting(cs); len(d) > 0 {
			violations = append(violations, fmt.Sprintf("%s: NodeClaims being deleted %v", time.Since(windowStart).Round(time.Second), d))
		}
		if tn, err := taintedNodes(ctx); err != nil || len(tn) > 0 {
			violations = append(violations, fmt.Sprintf("%s: nodes tainted %s %v (%v)", time.Since(windowStart).Round(time.Second), karpenterDisruptedTaint, tn, err))
		}
		if len(violations) > 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	disruptedHeldEnd, err := disruptedTotal(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: held window %s: workers disruptions while held %v (karpenter_nodeclaims_disrupted_total{nodepool=\"workers\"} %v -> %v; %v before the drift), NodeClaims unchanged %v",
		time.Since(windowStart).Round(time.Second), disruptedHeldEnd-disruptedHeldStart, disruptedHeldStart, disruptedHeldEnd, disruptedBefore, len(violations) == 0)
	for _, v := range violations {
		t.Errorf("a disruption while held: %s", v)
	}
	if disruptedHeldEnd != disruptedHeldStart {
		t.Errorf("karpenter_nodeclaims_disrupted_total{nodepool=\"workers\"} grew while held: %v -> %v", disruptedHeldStart, disruptedHeldEnd)
	}
	// Karpenter's own word on the NodePool.
	evs, err := tb.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=NodePool,involvedObject.name=workers"})
	if err != nil {
		t.Fatal(err)
	}
	blocked := map[string]int32{}
	for _, e := range evs.Items {
		if e.Source.Component == "karpenter" || strings.Contains(e.Message, "blocking budget") {
			blocked[e.Reason+": "+e.Message] += max(e.Count, 1)
		}
	}
	t.Logf("Karpenter's Events on NodePool workers: %v", blocked)
	for _, reason := range []string{"Drifted", "Empty"} {
		msg := "DisruptionBlocked: No allowed disruptions for disruption reason " + reason + " due to blocking budget"
		if blocked[msg] == 0 {
			t.Errorf("no Event %q on NodePool workers while held", msg)
		}
	}

	// 3. Expiry is not held: the hold warned, and Karpenter expired the
	// NodeClaim anyway.
	metrics, err := httpBody(ctx, "http://"+webAddr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`upgradeguard_hold_nodepool_expire_after_seconds{nodepool="expiring"} 60`,
		`upgradeguard_hold_active{target="nodepool/workers"} 1`,
		`upgradeguard_hold_active{target="nodepool/expiring"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("gate hold's /metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `upgradeguard_hold_nodepool_expire_after_seconds{nodepool="workers"}`) {
		t.Errorf("gate hold reports expiry for workers, whose expireAfter is Never")
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "upgradeguard_hold_nodepool_") || strings.HasPrefix(line, "upgradeguard_hold_apply_errors_total") {
			t.Logf("gate hold while held: %s", line)
		}
	}
	evs, err = tb.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=NodePool,involvedObject.name=expiring,reason=" + hold.ReasonNotHeld})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 1 || evs.Items[0].Type != corev1.EventTypeWarning {
		t.Errorf("%d %s Events on NodePool expiring, want one Warning", len(evs.Items), hold.ReasonNotHeld)
	} else {
		t.Logf("the hold's Event on expiring: %s", evs.Items[0].Message)
	}
	expiryDeadline := expiryClaim.GetCreationTimestamp().Add(expireAfter + 30*time.Second)
	var expiredAt time.Time
	if err := pollFast(ctx, time.Until(expiryDeadline)+time.Second, "expiring's NodeClaim deleted by Karpenter while held", func(ctx context.Context) (bool, error) {
		c, err := claims.Get(ctx, expiryClaim.GetName(), metav1.GetOptions{})
		if err != nil {
			return true, nil // gone
		}
		if dt := c.GetDeletionTimestamp(); dt != nil {
			expiredAt = dt.Time
			return true, nil
		}
		return false, nil
	}); err != nil {
		t.Error(err)
	} else {
		if expiredAt.IsZero() {
			expiredAt = time.Now()
		}
		np, _ := pools.Get(ctx, "expiring", metav1.GetOptions{})
		t.Logf("measured: expiry while held: NodeClaim %s deleted %s after its creation (expireAfter %s) with the pool's budgets %s; karpenter_nodeclaims_disrupted_total{nodepool=\"expiring\"} %v",
			expiryClaim.GetName(), expiredAt.Sub(expiryClaim.GetCreationTimestamp().Time).Round(100*time.Millisecond), expireAfter,
			asJSON(budgetsOf(np)), must(disruptedTotal(ctx, "expiring")))
	}

	// 4. The alert resolves: GO, the budgets back exactly, Karpenter
	// replaces the drifted nodes and removes the empty ones.
	fault.Store(0)
	resolvedAt := time.Now()
	var goAt time.Time
	restored := map[string]time.Duration{}
	if err := pollFast(ctx, 2*time.Minute, "GO and both pools restored exactly", func(ctx context.Context) (bool, error) {
		if goAt.IsZero() {
			if ok, _ := gateGO(ctx); ok {
				goAt = time.Now()
			}
		}
		for _, name := range []string{"workers", "expiring"} {
			if _, ok := restored[name]; ok {
				continue
			}
			np, err := pools.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if budgetsEqual(np, original[name]) && np.GetLabels()[hold.LabelHeld] == "" && np.GetAnnotations()[hold.AnnotationBudgets] == "" && np.GetAnnotations()[hold.AnnotationSince] == "" {
				restored[name] = time.Since(resolvedAt)
			}
		}
		return !goAt.IsZero() && len(restored) == 2, fmt.Errorf("GO at %v, restored %v", goAt, restored)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: fault switched off -> /gate GO %s; -> budgets restored exactly: workers %s, expiring %s",
		goAt.Sub(resolvedAt).Round(10*time.Millisecond), restored["workers"].Round(10*time.Millisecond), restored["expiring"].Round(10*time.Millisecond))
	var final map[string]unstructured.Unstructured
	if err := pollFast(ctx, 4*time.Minute, "every old workers NodeClaim gone, 2 pods Ready", func(ctx context.Context) (bool, error) {
		final, err = workerClaims(ctx)
		if err != nil {
			return false, err
		}
		var left []string
		for _, name := range slices.Concat(stillDrifted, empty) {
			if _, ok := final[name]; ok {
				left = append(left, name)
			}
		}
		n, _, err := readyPods(ctx, app)
		return len(left) == 0 && n == 2 && err == nil, fmt.Errorf("old NodeClaims left %v, %d pods ready (%v)", left, n, err)
	}); err != nil {
		t.Fatal(err)
	}
	replaced := time.Since(goAt)
	disruptedAfter, _ := disruptedTotal(ctx, "workers")
	t.Logf("measured: GO -> every drifted and empty workers NodeClaim gone, pods Ready: %s; NodeClaims now %v; karpenter_nodeclaims_disrupted_total{nodepool=\"workers\"} +%v after GO",
		replaced.Round(100*time.Millisecond), slices.Sorted(maps.Keys(final)), disruptedAfter-disruptedHeldEnd)
	// The empty nodes went without replacement: a NodeClaim per pod (after
	// consolidation settles).
	if err := pollFast(ctx, time.Minute, "workers down to 2 NodeClaims", func(ctx context.Context) (bool, error) {
		cs, err := workerClaims(ctx)
		return err == nil && len(cs) == 2 && len(deleting(cs)) == 0, fmt.Errorf("%d NodeClaims (%v)", len(cs), err)
	}); err != nil {
		t.Error(err)
	}
	stopSampler()
	<-samplerDone
	sampleMu.Lock()
	seenMu.Lock()
	t.Logf("measured: PDB sampler (every 200 ms, %d samples, %d distinct inflate pods seen Ready): minimum ready inflate pods %d, minimum margin over replicas-maxUnavailable %d, %d samples below it %v",
		samples, len(podsSeen), minReady, minMargin, belowPDB, belowPDBAt)
	seenMu.Unlock()
	if belowPDB > 0 {
		t.Errorf("the PDB was not respected: %d samples with fewer than replicas-1 pods ready: %v", belowPDB, belowPDBAt)
	}
	sampleMu.Unlock()
	metrics, err = httpBody(ctx, "http://"+webAddr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(metrics, `upgradeguard_hold_nodepool_expire_after_seconds{nodepool="expiring"}`) {
		t.Errorf("the expiry series of expiring outlived the hold")
	}
	// One pause and one resume per pool: the hold did not flap while
	// Karpenter replaced nodes, nor fight Karpenter's writes.
	for _, pool := range []string{"workers", "expiring"} {
		target := `target="nodepool/` + pool + `"`
		if n := sumSeries(metrics, "upgradeguard_hold_transitions_total", target); n != 2 {
			t.Errorf("upgradeguard_hold_transitions_total{%s} sums to %v, want 2 (one pause, one resume)", target, n)
		}
	}
	logText, _ := os.ReadFile(proc.LogPath)
	conflicts := strings.Count(string(logText), "the object has been modified")
	t.Logf("measured: gate hold's upgradeguard_hold_apply_errors_total %v, conflicts in its log %d",
		sumSeries(metrics, "upgradeguard_hold_apply_errors_total", ""), conflicts)
	t.Logf("measured: test duration %s", time.Since(testStart).Round(time.Second))
}

// createSpread creates a Deployment of n pods of 1 CPU and 1 GiB on the
// nodes of Karpenter pool, one per node (required hostname
// anti-affinity).
func createSpread(ctx context.Context, tb *testbed.Testbed, ns, app, pool string, n int32) error {
	labels := map[string]string{"app": app}
	_, err := tb.Client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{hold.LabelNodePool: pool},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
							LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
							TopologyKey:   corev1.LabelHostname,
						}},
					}},
					TerminationGracePeriodSeconds: new(int64(0)),
					Containers: []corev1.Container{{
						Name:  "app",
						Image: "pause", // never pulled: kwok fakes the containers
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("1"),
							corev1.ResourceMemory: resource.MustParse("1Gi"),
						}},
					}},
				},
			},
		},
	}, metav1.CreateOptions{})
	return err
}

func budgetsOf(np *unstructured.Unstructured) any {
	if np == nil {
		return nil
	}
	b, _, _ := unstructured.NestedFieldCopy(np.Object, "spec", "disruption", "budgets")
	return b
}

// budgetsEqual: np's spec.disruption.budgets deep-equal want, compared as
// JSON values.
func budgetsEqual(np *unstructured.Unstructured, want any) bool {
	var got, w any
	_ = json.Unmarshal([]byte(asJSON(budgetsOf(np))), &got)
	_ = json.Unmarshal([]byte(asJSON(want)), &w)
	return reflect.DeepEqual(got, w)
}

// sumSeries sums the samples of metric name in a Prometheus text
// exposition whose labels contain match ("" for all).
func sumSeries(body, name, match string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if match != "" && !strings.Contains(rest, match) {
			continue
		}
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func httpBody(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func must[T any](v T, _ error) T { return v }
