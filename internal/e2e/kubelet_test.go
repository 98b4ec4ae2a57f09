package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"
	"k8s.io/client-go/util/retry"

	"github.com/upgradeguard/upgradeguard/internal/testbed"
)

// kopsPodFailures reproduces the pod rule of kops' cluster validation
// (kubernetes/kops pkg/validation/validate_cluster.go, collectPodFailures;
// kops' module cannot be fetched here): over the pods of every namespace,
// listed page by page, a pod whose priorityClassName is
// system-cluster-critical or system-node-critical fails validation when it is
// Pending ("is pending"), in phase Unknown ("is unknown phase"), or has a
// container status that is not ready ("is not ready (names)"); Succeeded
// pods are skipped, and so is every other priority class. kops rolling-update
// validates before the first node and after each one, and retries a failed
// validation until --validation-timeout.
func kopsPodFailures(ctx context.Context, tb *testbed.Testbed) ([]string, error) {
	var failures []string
	err := pager.New(pager.SimplePageFunc(func(opts metav1.ListOptions) (runtime.Object, error) {
		return tb.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, opts)
	})).EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		pod := obj.(*corev1.Pod)
		priority := pod.Spec.PriorityClassName
		if priority != "system-cluster-critical" && priority != "system-node-critical" {
			return nil
		}
		switch pod.Status.Phase {
		case corev1.PodSucceeded:
			return nil
		case corev1.PodPending:
			failures = append(failures, fmt.Sprintf("%s pod %q is pending", priority, pod.Name))
			return nil
		case corev1.PodUnknown:
			failures = append(failures, fmt.Sprintf("%s pod %q is unknown phase", priority, pod.Name))
			return nil
		}
		var notReady []string
		for _, c := range pod.Status.ContainerStatuses {
			if !c.Ready {
				notReady = append(notReady, c.Name)
			}
		}
		if len(notReady) > 0 {
			failures = append(failures, fmt.Sprintf("%s pod %q is not ready (%s)", priority, pod.Name, strings.Join(notReady, ",")))
		}
		return nil
	})
	return failures, err
}

// fakeKubelet plays the kubelet of one node that kwok does not manage, for
// a pod whose readiness must follow a real readiness probe (kwok marks its
// pods ready and runs no probe). It registers the node, renews its Lease,
// runs the pod's container as a local process (start) and probes it as the
// kubelet does: the readinessProbe's httpGet every periodSeconds after
// initialDelaySeconds, success for a status in [200, 400) within
// timeoutSeconds (k8s.io/kubernetes pkg/probe/http/http.go), the result
// changing only after successThreshold successes or failureThreshold
// failures in a row, not ready until the first success
// (pkg/kubelet/prober/worker.go); the container's ready and the pod's
// ContainersReady and Ready conditions follow it, as the status manager
// writes them (pkg/kubelet/status/generate.go).
type fakeKubelet struct {
	t    *testing.T
	tb   *testbed.Testbed
	node string

	mu      sync.Mutex
	restart int32
}

func startFakeKubelet(ctx context.Context, t *testing.T, tb *testbed.Testbed, name string) *fakeKubelet {
	t.Helper()
	k := &fakeKubelet{t: t, tb: tb, node: name}
	res := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16Gi"), corev1.ResourcePods: resource.MustParse("110"),
	}
	if _, err := tb.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
	}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The node controllers write the new node too: retry on conflicts.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		n.Status.Capacity, n.Status.Allocatable = res, res.DeepCopy()
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		n.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: testbed.KubernetesVersion, OperatingSystem: "linux", Architecture: "amd64"}
		_, err = tb.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-node-lease"}, Spec: coordinationv1.LeaseSpec{
		HolderIdentity: &name, LeaseDurationSeconds: new(int32(40)), RenewTime: &metav1.MicroTime{Time: time.Now()},
	}}
	if _, err := tb.Client.CoordinationV1().Leases("kube-node-lease").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
			l, err := tb.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			_, _ = tb.Client.CoordinationV1().Leases("kube-node-lease").Update(ctx, l, metav1.UpdateOptions{})
		}
	}()
	return k
}

// setStatus writes the pod's status as the kubelet would with the
// container running (or not) and ready (or not).
func (k *fakeKubelet) setStatus(ctx context.Context, ns, name string, running, ready bool) error {
	pod, err := k.tb.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	k.mu.Lock()
	restarts := k.restart
	k.mu.Unlock()
	now := metav1.Now()
	cond := func(typ corev1.PodConditionType, ok bool) corev1.PodCondition {
		st := corev1.ConditionFalse
		if ok {
			st = corev1.ConditionTrue
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == typ && c.Status == st {
				return c // unchanged: keep its transition time
			}
		}
		return corev1.PodCondition{Type: typ, Status: st, LastTransitionTime: now}
	}
	c := pod.Spec.Containers[0]
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: "docker.io/library/" + c.Image, Ready: ready, RestartCount: restarts, Started: &running}
	if running {
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
	} else {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP, pod.Status.PodIP = "127.0.0.1", "127.0.0.1"
	if pod.Status.StartTime == nil {
		pod.Status.StartTime = &now
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	pod.Status.Conditions = []corev1.PodCondition{
		cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
		cond(corev1.ContainersReady, ready), cond(corev1.PodReady, ready),
	}
	_, err = k.tb.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

// probe runs the pod's readiness probe against url (the probe's port mapped
// to a local address) until ctx ends, writing each change of the result.
func (k *fakeKubelet) probe(ctx context.Context, pod *corev1.Pod, base string) {
	p := pod.Spec.Containers[0].ReadinessProbe
	if p == nil || p.HTTPGet == nil {
		k.t.Errorf("pod %s has no httpGet readiness probe", pod.Name)
		return
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	succ, fail := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	client := &http.Client{Timeout: timeout}
	ready, streak, last := false, int32(0), false
	if err := k.setStatus(ctx, pod.Namespace, pod.Name, true, false); err != nil && ctx.Err() == nil {
		k.t.Errorf("pod status: %v", err)
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(p.InitialDelaySeconds) * time.Second):
	}
	for ctx.Err() == nil {
		ok := false
		if resp, err := client.Get(base + p.HTTPGet.Path); err == nil {
			ok = resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusBadRequest
			resp.Body.Close()
		}
		if ok == last {
			streak++
		} else {
			last, streak = ok, 1
		}
		if ok && !ready && streak >= succ || !ok && ready && streak >= fail {
			ready = ok
			for ctx.Err() == nil {
				if err := k.setStatus(ctx, pod.Namespace, pod.Name, true, ready); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond) // a conflict with the controllers' writes: read again
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(period):
		}
	}
}
