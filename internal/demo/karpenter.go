package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/upgradeguard/upgradeguard/internal/hold"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// The demo's Karpenter part: the testbed's Karpenter (kwok provider)
// provisions a node of NodePool demoPool for the Deployment demo/inflate,
// and `upgradeguard gate hold` pauses that NodePool while the gate does not
// say GO (its spec.disruption.budgets become [{"nodes":"0"}], which stops
// Karpenter's drift and consolidation) and restores it after GO.
const (
	demoPool         = "demo-workers"
	demoPoolNS       = "demo"
	demoPoolApp      = "inflate"
	demoPoolTaintKey = "upgradeguard.io/demo-workers"
	// demoPoolBudgets is the pool's own budget, which the hold keeps in an
	// annotation while it holds the pool and gives back after.
	demoPoolBudgets = `[{"nodes":"1"}]`
)

// createKarpenterPool creates NodePool demo-workers and the Deployment
// demo/inflate (one pod of 1 CPU and 1 GiB, for which Karpenter creates a
// node) and returns without waiting: the node comes up while the exporter
// starts. The pool's nodes carry a taint only inflate tolerates, so that
// Karpenter provisions for no other pod and no other pod lands there.
func createKarpenterPool(ctx context.Context, tb *testbed.Testbed) error {
	var budgets []any
	if err := json.Unmarshal([]byte(demoPoolBudgets), &budgets); err != nil {
		return err
	}
	if _, err := tb.CreateNodePool(ctx, demoPool, map[string]any{
		"template": map[string]any{"spec": map[string]any{
			"requirements": []any{map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []string{"on-demand"}}},
			"taints":       []any{map[string]any{"key": demoPoolTaintKey, "effect": "NoSchedule"}},
		}},
		// The budget governs drift (what an upgrade's new image causes);
		// no consolidation while the demo runs.
		"disruption": map[string]any{"consolidateAfter": "Never", "budgets": budgets},
	}); err != nil {
		return fmt.Errorf("NodePool %s: %w", demoPool, err)
	}
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoPoolNS}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	labels := map[string]string{"app": demoPoolApp}
	replicas := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoPoolNS, Name: demoPoolApp, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"karpenter.sh/nodepool": demoPool},
					Tolerations:  []corev1.Toleration{{Key: demoPoolTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
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
	}
	if _, err := tb.Client.AppsV1().Deployments(demoPoolNS).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return err
	}
	logf("Karpenter: NodePool %s (budgets %s, nodes tainted %s) and Deployment %s/%s (1 pod, 1 CPU, 1 GiB) created",
		demoPool, demoPoolBudgets, demoPoolTaintKey, demoPoolNS, demoPoolApp)
	return nil
}

// waitKarpenterNode waits until inflate's pod runs on a node Karpenter
// created for demo-workers, and says which.
func waitKarpenterNode(ctx context.Context, tb *testbed.Testbed) error {
	var pod corev1.Pod
	err := testbed.WaitFor(ctx, 2*time.Minute, "Karpenter's node for "+demoPoolNS+"/"+demoPoolApp, func(ctx context.Context) (bool, error) {
		l, err := tb.Client.CoreV1().Pods(demoPoolNS).List(ctx, metav1.ListOptions{LabelSelector: "app=" + demoPoolApp})
		if err != nil {
			return false, err
		}
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
				pod = p
				return true, nil
			}
		}
		return false, fmt.Errorf("%d pod(s), none Running", len(l.Items))
	})
	if err != nil {
		return err
	}
	n, err := tb.Client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	logf("Karpenter: node %s (NodePool %s, instance type %s, zone %s) runs %s/%s",
		n.Name, n.Labels["karpenter.sh/nodepool"], n.Labels[corev1.LabelInstanceTypeStable], n.Labels[corev1.LabelTopologyZone], demoPoolNS, pod.Name)
	return nil
}

// startHold runs `upgradeguard gate hold` on the demo's policy, selecting
// NodePool demo-workers (no leader election: one replica). Its log is the
// testbed's upgradeguard-hold log; the testbed stops it.
func (d *demo) startHold() error {
	addr, err := testbed.FreeAddr()
	if err != nil {
		return err
	}
	fmt.Printf("Meanwhile gate hold pauses Karpenter NodePool %s whenever the gate does not say GO (its budgets,\n", demoPool)
	fmt.Println("now " + demoPoolBudgets + ", become [{\"nodes\":\"0\"}]: no drift or consolidation), and restores it after GO:")
	fmt.Printf("$ upgradeguard gate hold --query.url %s --karpenter.nodepool %s --no-leader-elect &\n", d.tb.ThanosQueryURL, demoPool)
	argv := append([]string{d.bin, "gate", "hold", "--kubeconfig", d.tb.Kubeconfig, "--karpenter.nodepool", demoPool,
		"--no-leader-elect", "--web.listen-address", addr, "--log.level", "info"}, d.gateArgs("")...)
	p, err := d.tb.StartProcess("upgradeguard-hold", argv, nil)
	if err != nil {
		return err
	}
	fmt.Printf("(its log: %s)\n\n", p.LogPath)
	return nil
}

// poolState is what the demo shows of the NodePool: its budgets and the
// hold's label and annotations.
type poolState struct {
	budgets     any
	held        bool
	annotations []string
}

func (d *demo) readPool(ctx context.Context) (poolState, error) {
	dyn, err := d.tb.NewDynamic()
	if err != nil {
		return poolState{}, err
	}
	np, err := dyn.Resource(testbed.NodePoolGVR).Get(ctx, demoPool, metav1.GetOptions{})
	if err != nil {
		return poolState{}, err
	}
	var s poolState
	s.budgets, _, _ = unstructured.NestedFieldCopy(np.Object, "spec", "disruption", "budgets")
	_, s.held = np.GetLabels()[hold.LabelHeld]
	for k, v := range np.GetAnnotations() {
		if strings.HasPrefix(k, "upgradeguard.io/") {
			s.annotations = append(s.annotations, k+": "+v)
		}
	}
	sort.Strings(s.annotations)
	return s, nil
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// waitPool polls the NodePool until want says yes (at most timeout) and
// prints it under title.
func (d *demo) waitPool(ctx context.Context, timeout time.Duration, title string, want func(poolState) bool) {
	var s poolState
	err := testbed.WaitFor(ctx, timeout, "NodePool "+demoPool, func(ctx context.Context) (bool, error) {
		var err error
		s, err = d.readPool(ctx)
		return err == nil && want(s), err
	})
	if err != nil {
		if ctx.Err() == nil {
			fmt.Printf("  >>> demo: NodePool %s: %v\n", demoPool, err)
		}
		return
	}
	fmt.Printf("  >>> demo: %s\n", title)
	fmt.Printf("        spec.disruption.budgets: %s\n", jsonOf(s.budgets))
	if s.held {
		fmt.Printf("        label %s\n", hold.LabelHeld)
	}
	for _, a := range s.annotations {
		fmt.Printf("        %s\n", a)
	}
	if !s.held && len(s.annotations) == 0 {
		fmt.Println("        (no hold label or annotations)")
	}
}

// showHeld prints the NodePool once gate hold has paused it.
func (d *demo) showHeld(ctx context.Context) {
	paused := []any{map[string]any{"nodes": "0"}}
	d.waitPool(ctx, 30*time.Second, "gate hold has paused NodePool "+demoPool+":", func(s poolState) bool {
		return s.held && reflect.DeepEqual(s.budgets, paused)
	})
}

// showRestored prints the NodePool once gate hold has restored it, and the
// hold's Events on it.
func (d *demo) showRestored(ctx context.Context) {
	d.waitPool(ctx, 90*time.Second, "after GO gate hold has restored NodePool "+demoPool+":", func(s poolState) bool {
		return !s.held && jsonOf(s.budgets) == demoPoolBudgets
	})
	// Events on cluster-scoped objects are in namespace default.
	l, err := d.tb.Client.CoreV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=NodePool,involvedObject.name=" + demoPool})
	if err != nil {
		if ctx.Err() == nil {
			fmt.Printf("  >>> demo: the hold's Events: %v\n", err)
		}
		return
	}
	sort.Slice(l.Items, func(i, j int) bool { return eventTime(l.Items[i]).Before(eventTime(l.Items[j])) })
	fmt.Printf("  >>> demo: the hold's Events on NodePool %s (kubectl get events --field-selector involvedObject.name=%s):\n", demoPool, demoPool)
	for _, e := range l.Items {
		// Karpenter records its own (status conditions) on the pool too.
		if !strings.HasPrefix(e.Reason, "UpgradeHold") {
			continue
		}
		fmt.Printf("        %s  %s %s: %s\n", eventTime(e).Local().Format("15:04:05"), e.Type, e.Reason, e.Message)
	}
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.FirstTimestamp.Time
}
