package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// TestKarpenterProvisions: the testbed's real Karpenter
// (kwok provider). With a NodePool and no node at all, a Deployment of 2
// pods that each want 1 CPU and 1 GiB stays Pending until Karpenter creates
// NodeClaims, their kwok Nodes become Ready (the testbed's kwok manages
// them by their kwok.x-k8s.io/node=fake annotation), Karpenter registers
// them (its startup taint goes) and the scheduler binds the pods, which
// kwok then runs. Each step's time since the Deployment was created is
// logged.
func TestKarpenterProvisions(t *testing.T) {
	tb := testbed.ForTest(t, testbed.Options{Karpenter: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	if _, err := tb.CreateNodePool(ctx, "default", map[string]any{
		"template": map[string]any{"spec": map[string]any{
			"requirements": []any{map[string]any{
				"key": "karpenter.sh/capacity-type", "operator": "In", "values": []string{"on-demand"},
			}},
		}},
		// No consolidation while the test looks.
		"disruption": map[string]any{"consolidateAfter": "Never"},
	}); err != nil {
		t.Fatal(err)
	}
	dyn, err := tb.NewDynamic()
	if err != nil {
		t.Fatal(err)
	}

	const ns, name = "default", "inflate"
	labels := map[string]string{"app": name}
	replicas := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "app",
					Image: "pause", // never pulled: kwok fakes the containers
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("1"),
						corev1.ResourceMemory: resource.MustParse("1Gi"),
					}},
				}}},
			},
		},
	}
	began := time.Now()
	if _, err := tb.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	last := began
	step := func(what string) {
		now := time.Now()
		t.Logf("%-40s %8s after the previous step, %8s after the Deployment",
			what, now.Sub(last).Round(10*time.Millisecond), now.Sub(began).Round(10*time.Millisecond))
		last = now
	}

	pods := func(ctx context.Context) ([]corev1.Pod, error) {
		l, err := tb.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	if err := pollFast(ctx, 30*time.Second, "2 pods Pending (unschedulable)", func(ctx context.Context) (bool, error) {
		ps, err := pods(ctx)
		if err != nil {
			return false, err
		}
		n := 0
		for _, p := range ps {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					n++
				}
			}
		}
		return n == 2, fmt.Errorf("%d of %d pods unschedulable", n, len(ps))
	}); err != nil {
		t.Fatal(err)
	}
	step("2 pods Pending, unschedulable")

	var claims []unstructured.Unstructured
	if err := pollFast(ctx, 60*time.Second, "NodeClaims", func(ctx context.Context) (bool, error) {
		l, err := dyn.Resource(testbed.NodeClaimGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		claims = l.Items
		return len(claims) > 0, fmt.Errorf("no NodeClaim yet")
	}); err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("%d NodeClaim(s) created", len(claims)))

	if err := pollFast(ctx, 60*time.Second, "NodeClaims launched with a Node", func(ctx context.Context) (bool, error) {
		l, err := dyn.Resource(testbed.NodeClaimGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		claims = l.Items
		for _, c := range claims {
			if n, _, _ := unstructured.NestedString(c.Object, "status", "nodeName"); n == "" {
				return false, fmt.Errorf("NodeClaim %s has no node yet", c.GetName())
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	step("NodeClaims have a Node")

	nodeReady := func(n corev1.Node) bool {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}
	var nodes []corev1.Node
	if err := pollFast(ctx, 60*time.Second, "Karpenter's Nodes Ready", func(ctx context.Context) (bool, error) {
		l, err := tb.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=default"})
		if err != nil {
			return false, err
		}
		nodes = l.Items
		if len(nodes) < len(claims) {
			return false, fmt.Errorf("%d nodes for %d NodeClaims", len(nodes), len(claims))
		}
		for _, n := range nodes {
			if !nodeReady(n) {
				return false, fmt.Errorf("node %s not Ready", n.Name)
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("%d Node(s) Ready", len(nodes)))
	for _, n := range nodes {
		t.Logf("node %s: instance type %s, zone %s, capacity type %s, cpu %s, memory %s",
			n.Name, n.Labels[corev1.LabelInstanceTypeStable], n.Labels[corev1.LabelTopologyZone],
			n.Labels["karpenter.sh/capacity-type"], n.Status.Allocatable.Cpu(), n.Status.Allocatable.Memory())
	}

	if err := pollFast(ctx, 60*time.Second, "NodeClaims Initialized", func(ctx context.Context) (bool, error) {
		l, err := dyn.Resource(testbed.NodeClaimGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range l.Items {
			if !conditionTrue(c, "Initialized") {
				return false, fmt.Errorf("NodeClaim %s not Initialized", c.GetName())
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	step("NodeClaims Registered and Initialized")

	if err := pollFast(ctx, 60*time.Second, "2 pods Running on Karpenter's nodes", func(ctx context.Context) (bool, error) {
		ps, err := pods(ctx)
		if err != nil {
			return false, err
		}
		onNode := map[string]bool{}
		for _, n := range nodes {
			onNode[n.Name] = true
		}
		var bad []string
		for _, p := range ps {
			if p.Status.Phase != corev1.PodRunning || !onNode[p.Spec.NodeName] {
				bad = append(bad, fmt.Sprintf("%s %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName))
			}
		}
		if len(ps) != 2 || len(bad) > 0 {
			return false, fmt.Errorf("%d pods, not Running on a Karpenter node: %s", len(ps), strings.Join(bad, ", "))
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	step("2 pods Running")

	body, err := karpenterMetrics(ctx, tb.KarpenterMetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "karpenter_nodeclaims_created_total") {
		t.Errorf("Karpenter's metrics at %s lack karpenter_nodeclaims_created_total", tb.KarpenterMetricsURL)
	}
}

// pollFast is testbed.WaitFor polling every 100 ms, for the step timings.
func pollFast(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: gave up after %s; last error: %v", what, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func karpenterMetrics(ctx context.Context, url string) (string, error) {
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
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// conditionTrue: u's status.conditions has typ with status True.
func conditionTrue(u unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m["status"] == "True"
		}
	}
	return false
}
