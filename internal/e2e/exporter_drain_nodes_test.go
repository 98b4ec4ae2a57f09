package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/scrape"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// The exporter's side of the gate's drain and node checks, through the real
// API server, controllers and Eviction API: why a drain is refused, the churn of nodes on their way
// out, a clock-skewed kubelet, and the Auto Scaling groups' instances.

// checkDrainReasons: a pod under two PDBs is refused with a 500 whatever
// the budgets say (reason multiple_pdbs), and a PDB whose status lags its
// spec refuses with a 429 (reason status_stale), as the exporter says.
func checkDrainReasons(ctx context.Context, t *testing.T, tb *testbed.Testbed, metricsURL, node string) {
	// web-pdb (from the Deployment) and front-pdb select the same two pods;
	// each allows one disruption.
	one := intstr.FromInt32(1)
	if err := tb.CreateWorkload(ctx, testbed.Workload{Namespace: "two", Name: "web", Replicas: 2, MaxUnavailable: &one,
		NodeSelector: map[string]string{corev1.LabelHostname: node}}); err != nil {
		t.Fatal(err)
	}
	front := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "two", Name: "front"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "www"}}},
		}},
	}
	if _, err := tb.Client.PolicyV1().PodDisruptionBudgets("two").Create(ctx, front, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// stale: two pods under minAvailable 1, which the disruption controller
	// computes by counting the pods; changed to maxUnavailable 1, which it
	// computes from the pods' controller's scale. Their controller is a
	// ConfigMap, which has no scale subresource: the sync fails and the
	// status keeps its observedGeneration behind metadata.generation
	// (pkg/controller/disruption/disruption.go: getExpectedScale, failSafe).
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lag"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	owner, err := tb.Client.CoreV1().ConfigMaps("lag").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "lag", Name: fmt.Sprintf("bare-%d", i), Labels: map[string]string{"app": "bare"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID, Controller: ptr(true)}}},
			Spec: corev1.PodSpec{
				NodeName: node,
				Tolerations: []corev1.Toleration{{Key: testbed.KwokAnnotation, Operator: corev1.TolerationOpEqual,
					Value: testbed.KwokAnnotationValue, Effect: corev1.TaintEffectNoSchedule}},
				Containers: []corev1.Container{{Name: "app", Image: "pause"}},
			},
		}
		if _, err := tb.Client.CoreV1().Pods("lag").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	minOne := intstr.FromInt32(1)
	stale := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "lag", Name: "bare"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minOne, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bare"}}},
	}
	if _, err := tb.Client.PolicyV1().PodDisruptionBudgets("lag").Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	err = testbed.WaitFor(ctx, 2*time.Minute, "the disruption controller to allow one disruption of lag/bare", func(ctx context.Context) (bool, error) {
		p, err := tb.Client.PolicyV1().PodDisruptionBudgets("lag").Get(ctx, "bare", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.ObservedGeneration == p.Generation && p.Status.DisruptionsAllowed == 1,
			fmt.Errorf("generation %d, observed %d, allowed %d", p.Generation, p.Status.ObservedGeneration, p.Status.DisruptionsAllowed)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lag/bare allows one disruption after %s", time.Since(begin).Round(time.Second))
	patch := []byte(`{"spec":{"minAvailable":null,"maxUnavailable":1}}`)
	if _, err := tb.Client.PolicyV1().PodDisruptionBudgets("lag").Patch(ctx, "bare", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	err = testbed.WaitFor(ctx, 2*time.Minute, "the exporter to show 2 pods blocked by reason multiple_pdbs under both PDBs and 2 by status_stale", func(ctx context.Context) (bool, error) {
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			return false, err
		}
		multi := func(pdb string) float64 {
			v, _ := mfs.Value("upgradeguard_node_drain_blocked_pods", map[string]string{"node": node, "namespace": "two", "pdb": pdb, "reason": "multiple_pdbs"})
			return v
		}
		lag, _ := mfs.Value("upgradeguard_node_drain_blocked_pods", map[string]string{"node": node, "namespace": "lag", "pdb": "bare", "reason": "status_stale"})
		others := 0
		for _, s := range mfs.Samples("upgradeguard_node_drain_blocked_pods", map[string]string{"node": node}) {
			if ns := s.Labels["namespace"]; (ns == "two" && s.Labels["reason"] != "multiple_pdbs") || (ns == "lag" && s.Labels["reason"] != "status_stale") {
				others++
			}
		}
		return multi("web") == 2 && multi("front") == 2 && lag == 2 && others == 0,
			fmt.Errorf("multiple_pdbs web=%v front=%v, status_stale bare=%v, series of other reasons %d", multi("web"), multi("front"), lag, others)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the exporter shows the reasons after %s", time.Since(begin).Round(time.Second))
	p, err := tb.Client.PolicyV1().PodDisruptionBudgets("lag").Get(ctx, "bare", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.ObservedGeneration >= p.Generation {
		t.Errorf("lag/bare: observedGeneration %d, generation %d: the status caught up, the case is not what it means to be", p.Status.ObservedGeneration, p.Generation)
	}

	// What the Eviction API answers, once: client-go would otherwise retry a
	// 429 that carries a Retry-After for as long as it says, ten times.
	evict := func(ns, name string) error {
		return tb.Client.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(name).SubResource("eviction").
			MaxRetries(0).Body(&policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}).Do(ctx).Error()
	}
	webPods, err := tb.Client.CoreV1().Pods("two").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range webPods.Items {
		err := evict("two", pod.Name)
		if code := statusCode(err); code != http.StatusInternalServerError {
			t.Errorf("evicting %s, selected by web and front: %v (code %d), want 500, as multiple_pdbs says", pod.Name, err, code)
		}
	}
	// The stale-status refusal (eviction.go line 428) asks to retry in 10 s;
	// the exhausted budget's (line 447) in 0.
	for i := range 2 {
		err := evict("lag", fmt.Sprintf("bare-%d", i))
		retryAfter, _ := apierrors.SuggestsClientDelay(err)
		if !apierrors.IsTooManyRequests(err) || retryAfter != 10 {
			t.Errorf("evicting lag/bare-%d under a PDB whose status lags: %v (retry after %d s), want 429 retry after 10 s, as status_stale says", i, err, retryAfter)
		}
	}
}

func statusCode(err error) int32 {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status().Code
	}
	return 0
}

// playKubelet creates a node without kwok's annotation and plays its
// kubelet: Ready, and its Lease renewed every 10 s with the kubelet's clock,
// skew off the real one, until ctx ends.
func playKubelet(ctx context.Context, t *testing.T, tb *testbed.Testbed, name string, skew time.Duration) {
	t.Helper()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Spec:       corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/" + testbed.InstanceID(name)},
	}
	if _, err := tb.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The node controller writes the new node too (taints, conditions):
	// retry on its conflicts, as a kubelet does.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewTime(time.Now().Add(skew))
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: now, LastTransitionTime: now}}
		_, err = tb.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	leases := tb.Client.CoordinationV1().Leases("kube-node-lease")
	renewAt := func() *metav1.MicroTime { return &metav1.MicroTime{Time: time.Now().Add(skew)} }
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-node-lease"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: ptr(int32(40)), RenewTime: renewAt()},
	}
	if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l, err := leases.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			l.Spec.RenewTime = renewAt()
			_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
	}()
}

// checkClockSkew: kubelets whose clocks run a minute behind and ahead, both
// renewing every 10 s, show heartbeat ages under the renewal period and
// never negative, and stay Ready as the node controller sees them.
func checkClockSkew(ctx context.Context, t *testing.T, tb *testbed.Testbed, metricsURL string) {
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	playKubelet(kctx, t, tb, "skew-behind", -time.Minute)
	playKubelet(kctx, t, tb, "skew-ahead", time.Minute)

	// The exporter's first sight of the behind kubelet's Lease counts its
	// renewTime at face value (a minute old); from its first renewal on,
	// the exporter's own clock measures it.
	err := testbed.WaitFor(ctx, time.Minute, "the exporter to see skew-behind's Lease renewed", func(ctx context.Context) (bool, error) {
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			return false, err
		}
		age, ok := mfs.Value("upgradeguard_node_heartbeat_age_seconds", map[string]string{"node": "skew-behind"})
		return ok && age < 15, fmt.Errorf("heartbeat age %v (%v)", age, ok)
	})
	if err != nil {
		t.Fatal(err)
	}
	worst := map[string]float64{}
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) {
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"skew-behind", "skew-ahead"} {
			age, ok := mfs.Value("upgradeguard_node_heartbeat_age_seconds", map[string]string{"node": n})
			if !ok {
				t.Fatalf("%s: no heartbeat age", n)
			}
			if age < 0 {
				t.Errorf("%s: negative heartbeat age %v", n, age)
			}
			worst[n] = max(worst[n], age)
		}
		time.Sleep(2 * time.Second)
	}
	// 10 s between renewals, plus the watch's delivery on a loaded machine;
	// the kubelet's clock (60 s off) must not show.
	for n, age := range worst {
		if age >= 15 {
			t.Errorf("%s: heartbeat age up to %.1f s while its kubelet renews every 10 s with a clock a minute off", n, age)
		}
	}
	t.Logf("largest heartbeat ages over 40 s: %v", worst)
	for _, n := range []string{"skew-behind", "skew-ahead"} {
		if ok, err := tb.NodeReady(n, corev1.ConditionTrue)(ctx); !ok {
			t.Errorf("the node controller does not keep %s Ready: %v", n, err)
		}
	}
}

// checkNodesOnTheirWayOut: a taint and a deletionTimestamp are exported.
func checkNodesOnTheirWayOut(ctx context.Context, t *testing.T, tb *testbed.Testbed, metricsURL, tainted string) {
	patch := []byte(`{"spec":{"taints":[{"key":"ToBeDeletedByClusterAutoscaler","value":"1795518000","effect":"NoSchedule"},` +
		`{"key":"` + testbed.KwokAnnotation + `","value":"` + testbed.KwokAnnotationValue + `","effect":"NoSchedule"}]}}`)
	if _, err := tb.Client.CoreV1().Nodes().Patch(ctx, tainted, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// A node held by a finalizer while it is deleted, as Karpenter holds
	// the nodes it terminates.
	leaving := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "leaving", Finalizers: []string{"example.com/terminate"}}}
	if _, err := tb.Client.CoreV1().Nodes().Create(ctx, leaving, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = tb.Client.CoreV1().Nodes().Patch(context.Background(), "leaving", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	if err := tb.Client.CoreV1().Nodes().Delete(ctx, "leaving", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n, err := tb.Client.CoreV1().Nodes().Get(ctx, "leaving", metav1.GetOptions{})
	if err != nil || n.DeletionTimestamp == nil {
		t.Fatalf("node leaving: %v, deletionTimestamp %v", err, n.DeletionTimestamp)
	}
	err = testbed.WaitFor(ctx, time.Minute, "the exporter to show "+tainted+"'s taint and leaving's deletion", func(ctx context.Context) (bool, error) {
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			return false, err
		}
		taint, ok1 := mfs.Value("upgradeguard_node_spec_taint", map[string]string{"node": tainted, "key": "ToBeDeletedByClusterAutoscaler", "value": "1795518000", "effect": "NoSchedule"})
		del, ok2 := mfs.Value("upgradeguard_node_deletion_timestamp_seconds", map[string]string{"node": "leaving"})
		_, notLeaving := mfs.Value("upgradeguard_node_deletion_timestamp_seconds", map[string]string{"node": tainted})
		return ok1 && taint == 1 && ok2 && del == float64(n.DeletionTimestamp.Unix()) && !notLeaving,
			fmt.Errorf("taint %v (%v), deletion %v (%v), want %d, deletion of %s %v", taint, ok1, del, ok2, n.DeletionTimestamp.Unix(), tainted, notLeaving)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkGroupInstances: the group's instances, by lifecycle state, join
// the nodes by instance ID and node group through Thanos; an instance whose
// node is gone shows as the only one without a node.
func checkGroupInstances(ctx context.Context, t *testing.T, tb *testbed.Testbed, acct *awsfake.Account, backed *testbed.InstanceNodes, metricsURL string) {
	group, _ := acct.ASG("nodes-aws")
	err := testbed.WaitFor(ctx, 2*time.Minute, "the exporter to show nodes-aws's 3 instances in service", func(ctx context.Context) (bool, error) {
		mfs, err := scrape.Get(ctx, metricsURL)
		if err != nil {
			return false, err
		}
		desired, _ := mfs.Value("upgradeguard_aws_asg_desired_capacity", map[string]string{"asg": "nodes-aws", "nodegroup": "nodes-aws", "region": "eu-west-1"})
		var ids []string
		for _, s := range mfs.Samples("upgradeguard_aws_asg_instance_info", map[string]string{"asg": "nodes-aws", "nodegroup": "nodes-aws", "lifecycle_state": "InService"}) {
			ids = append(ids, s.Labels["instance_id"])
			if _, ok := mfs.Value("upgradeguard_aws_asg_instance_launch_time_seconds", map[string]string{"instance_id": s.Labels["instance_id"]}); !ok {
				return false, fmt.Errorf("no launch time of %s", s.Labels["instance_id"])
			}
		}
		slices.Sort(ids)
		want := slices.Sorted(slices.Values(group.Instances))
		return desired == 3 && slices.Equal(ids, want), fmt.Errorf("desired %v, in service %v, want %v", desired, ids, want)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every instance has its node, matched by instance ID and node group.
	join := `upgradeguard_aws_asg_instance_info{asg="nodes-aws", lifecycle_state="InService"} unless on (instance_id, nodegroup) upgradeguard_node_info`
	err = testbed.WaitFor(ctx, time.Minute, "Thanos to join the instances with their nodes", func(ctx context.Context) (bool, error) {
		r, err := tb.QueryThanos(ctx, `count(upgradeguard_aws_asg_instance_info{asg="nodes-aws"})`, true)
		if err != nil || len(r) != 1 {
			return false, fmt.Errorf("instances not in Thanos yet: %v %v", r, err)
		}
		r, err = tb.QueryThanos(ctx, join, true)
		return err == nil && len(r) == 0, fmt.Errorf("instances without a node: %v (%v)", r, err)
	})
	if err != nil {
		t.Fatal(err)
	}

	// A group short of a node: a group with an instance in service whose
	// node never registered. The group launches a fourth instance; its node
	// is removed.
	before := group.Instances
	if err := acct.SetDesiredCapacity("nodes-aws", 4); err != nil {
		t.Fatal(err)
	}
	group, _ = acct.ASG("nodes-aws")
	var orphan string
	for _, id := range group.Instances {
		if !slices.Contains(before, id) {
			orphan = id
		}
	}
	if orphan == "" {
		t.Fatalf("no new instance in nodes-aws: %v", group.Instances)
	}
	var orphanNode string
	err = testbed.WaitFor(ctx, time.Minute, "the node of "+orphan, func(context.Context) (bool, error) {
		var ok bool
		orphanNode, ok = backed.Node(orphan)
		return ok, backed.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Client.CoreV1().Nodes().Delete(ctx, orphanNode, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = testbed.WaitFor(ctx, 2*time.Minute, "Thanos to show "+orphan+" as the only instance of nodes-aws without a node", func(ctx context.Context) (bool, error) {
		r, err := tb.QueryThanos(ctx, join, true)
		if err != nil {
			return false, err
		}
		return len(r) == 1 && r[0].Metric["instance_id"] == orphan && r[0].Metric["zone"] != "",
			fmt.Errorf("instances without a node: %v", r)
	})
	if err != nil {
		t.Fatal(err)
	}
}
