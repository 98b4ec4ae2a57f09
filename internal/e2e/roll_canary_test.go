package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/upgradeguard/upgradeguard/internal/awsfake"
	"github.com/upgradeguard/upgradeguard/internal/roll"
	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// The canary soak, with real components: `roll --canary 1 --canary-soak`
// on a group of 4 kwok nodes running a Deployment of 4 replicas, one per
// node (required anti-affinity), with the default rolling update's
// maxUnavailable of 25%. The canary node's replica is rescheduled onto the
// new node; once the soak holds, that pod crash-loops (the test writes its
// status as the kubelet does: waiting CrashLoopBackOff, restarts, not
// Ready; kwok's pod-ready stage only readies Pending pods, so it stays).
// 3 of 4 Ready is within maxUnavailable: the gate passes, and before the
// judge of the new nodes the soak passed and the roll went on to every
// node. Now the soak fails (exit 3) naming the node, the pod, the container
// and CrashLoopBackOff, with only the canary replaced. Once the pod runs
// again, the re-run judges the same new node (recorded on the main nodes:
// the old canary node is deleted) through a soak held again in full, and
// replaces the rest.
func TestRollCanaryJudgesNewNodes(t *testing.T) {
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
	const group = "nodes-canary"
	if _, err := acct.AddASG(awsfake.ASGSpec{Name: group, LaunchTemplate: lt.ID, Min: 1, Max: 5, Desired: 4, Subnets: []string{sub.ID}, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if err := backed.Err(); err != nil {
		t.Fatal(err)
	}
	e := &rollEnv{t: t, tb: tb, bin: bin, aws: srv}
	e.kubeconfig = rollKubeconfig(ctx, t, tb)
	e.policy = filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(e.policy, []byte(rollPolicy), 0o644); err != nil {
		t.Fatal(err)
	}

	// web: 4 replicas, one per node of the group.
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(4)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				NodeSelector: map[string]string{testbed.DefaultNodeGroupLabel: group},
				Tolerations: []corev1.Toleration{{Key: testbed.KwokAnnotation, Operator: corev1.TolerationOpEqual, Value: testbed.KwokAnnotationValue,
					Effect: corev1.TaintEffectNoSchedule}},
				Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, TopologyKey: corev1.LabelHostname}}}},
				Containers: []corev1.Container{{Name: "app", Image: "web:v2", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}},
			}},
		},
	}
	if _, err := tb.Client.AppsV1().Deployments("web").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	startExporter(t, tb, bin, "")
	err = testbed.WaitFor(ctx, 4*time.Minute, "web's 4 pods ready and the exporter's drain series of the 4 nodes in Thanos", func(ctx context.Context) (bool, error) {
		pods, err := readyPods(ctx, e, "web", "web")
		if err != nil || len(pods) != 4 {
			return false, fmt.Errorf("%d web pods ready (%v)", len(pods), err)
		}
		r, err := tb.QueryThanos(ctx, `upgradeguard_node_drainable`, true)
		return err == nil && len(r) == 4, fmt.Errorf("%d nodes with drain series (%v)", len(r), err)
	})
	if err != nil {
		t.Fatal(err)
	}
	var old []string
	for name := range e.groupNodes(ctx, group) {
		old = append(old, name)
	}
	slices.Sort(old)
	newNode := func() string {
		for name := range e.groupNodes(ctx, group) {
			if !slices.Contains(old, name) {
				return name
			}
		}
		return ""
	}

	run := e.start(ctx, e.policy, "--nodegroup", group, "--order", "name", "--canary", "1", "--canary-soak", "45s", "--gate-timeout", "5m")
	err = testbed.WaitFor(ctx, 5*time.Minute, "the canary soak under way", func(ctx context.Context) (bool, error) {
		select {
		case <-run.done:
			return false, errors.New("the roll ended")
		default:
		}
		return strings.Contains(run.out.String(), "canary soak: holding"), errors.New("not yet")
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, run.tail())
	}
	soakBegan := time.Now()
	canaryNode := newNode()
	var crashing string
	l, err := tb.Client.CoreV1().Pods("web").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		if p.Spec.NodeName == canaryNode && p.DeletionTimestamp == nil {
			crashing = p.Name
		}
	}
	if crashing == "" {
		t.Fatalf("no web pod on the new node %s when the soak began\n%s", canaryNode, run.tail())
	}
	if err := crashLoop(ctx, tb, "web", crashing); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	code := run.exitCode()
	out := run.out.String()
	t.Logf("pod %s on %s crash-looping %s into the soak; the roll ended %s later with %d:\n%s", crashing, canaryNode,
		crashed.Sub(soakBegan).Round(100*time.Millisecond), time.Since(crashed).Round(100*time.Millisecond), code, out)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (the canary soak failed)", code)
	}
	for _, want := range []string{"canary soak failed after", "the canary's new node(s) are not healthy",
		fmt.Sprintf("node %s (replacing %s): pod web/%s container app: CrashLoopBackOff", canaryNode, old[0], crashing),
		"has 3 Ready pod(s) on other nodes"} {
		if !strings.Contains(out, want) {
			t.Errorf("the roll's output lacks %q", want)
		}
	}
	if strings.Contains(out, "the gate's evaluation did not pass") {
		t.Error("the gate failed the soak: this test is about what the gate does not see")
	}
	if n := srv.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
		t.Errorf("%d instances terminated, want the canary's only", n)
	}
	for name, n := range e.groupNodes(ctx, group) {
		if n.Spec.Unschedulable {
			t.Errorf("%s cordoned after the soak failed", name)
		}
		if slices.Contains(old[1:], name) && n.Annotations[roll.AnnotationCanaryNodes] != canaryNode+"="+old[0] {
			t.Errorf("%s: %s=%q, want the canary's new node recorded", name, roll.AnnotationCanaryNodes, n.Annotations[roll.AnnotationCanaryNodes])
		}
	}

	// The image is fixed: the pod is replaced and runs. The re-run holds
	// the soak again, judging the same new node, and replaces the rest.
	if err := tb.Client.CoreV1().Pods("web").Delete(ctx, crashing, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	err = testbed.WaitFor(ctx, 2*time.Minute, "web's 4 pods ready again", func(ctx context.Context) (bool, error) {
		pods, err := readyPods(ctx, e, "web", "web")
		return err == nil && len(pods) == 4, fmt.Errorf("%d ready (%v)", len(pods), err)
	})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	run = e.start(ctx, e.policy, "--nodegroup", group, "--gate-timeout", "5m")
	code = run.exitCode()
	out = run.out.String()
	t.Logf("re-run exited %d after %s:\n%s", code, time.Since(began).Round(time.Second), out)
	if code != 0 {
		t.Fatalf("re-run exited %d", code)
	}
	for _, want := range []string{"resuming roll", "judging the new node(s) " + canaryNode + " (replacing " + old[0] + ")", "canary soak passed: "} {
		if !strings.Contains(out, want) {
			t.Errorf("the re-run's output lacks %q", want)
		}
	}
	now := e.groupNodes(ctx, group)
	for _, name := range old {
		if _, ok := now[name]; ok {
			t.Errorf("old node %s still there", name)
		}
	}
	if err := backed.Err(); err != nil {
		t.Error(err)
	}
}

// crashLoop writes a pod's status as the kubelet does for a container that
// keeps exiting: phase Running, the container waiting in CrashLoopBackOff
// after 3 restarts, its last run terminated with exit code 1, the pod not
// Ready (kubernetes/kubernetes pkg/kubelet/kuberuntime and
// pkg/kubelet/status/generate.go).
func crashLoop(ctx context.Context, tb *testbed.Testbed, ns, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		for i := range p.Status.Conditions {
			if c := &p.Status.Conditions[i]; c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
				c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [app]", now
			}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: "app", Image: p.Spec.Containers[0].Image, Ready: false, RestartCount: 3, Started: new(false),
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: "back-off 40s restarting failed container=app pod=" + name + "_" + ns}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error",
				StartedAt: metav1.NewTime(now.Add(-2 * time.Second)), FinishedAt: now}},
		}}
		_, err = tb.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
}
