package preflight

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

func runWorkloads(t *testing.T, apps []app, extra ...runtime.Object) []Finding {
	t.Helper()
	return CheckWorkloads(context.Background(), wlCluster(apps, extra...), WorkloadsPolicy{}, "")
}

func logFindings(t *testing.T, fs []Finding) {
	for _, f := range fs {
		t.Logf("%s %s %s %s: %s", f.Severity, f.Rule, f.Workload, f.Object, f.Message)
	}
}

// Regression tests from a review of the workloads family: each input made the workloads
// family call a workload safe (or name the wrong fix).

// A Service selecting one of a Deployment's 2 pods (role=primary on pod 1
// only): Services were matched on the first pod's labels only, so
// db-primary's single endpoint went unseen.
func TestWorkloadsServiceSelectingSomePods(t *testing.T) {
	a := healthy("db")
	a.service = false
	a.nodes = []string{"n1", "n2"}
	a.spec = func(s *corev1.PodSpec) { s.Containers[0].ReadinessProbe = nil }
	a.pod = func(i int, p *corev1.Pod) {
		p.Labels = map[string]string{"app": "db"}
		if i == 1 {
			p.Labels["role"] = "primary"
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-primary"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db", "role": "primary"}}}
	fs := runWorkloads(t, []app{a}, svc)
	logFindings(t, fs)
	got := rulesBy(t, fs)["Deployment/db"]
	t.Logf("rules: %v", got)
	if !strings.Contains(strings.Join(got, ","), RuleNoReadinessProbe) {
		t.Errorf("Service db-primary's only endpoint has no readiness probe: want %s", RuleNoReadinessProbe)
	}
}

// 3 replicas, one scheduled and running, two Pending (no nodeName): one pod
// serves the Service, and no rule looked (spec.replicas was 3, and fewer
// than 2 pods were scheduled).
func TestWorkloadsOneScheduledReplicaOfThree(t *testing.T) {
	a := healthy("api")
	a.nodes = []string{"n1"}
	a.replicas = 3
	a.pdb = nil
	pending := func(n string) *corev1.Pod {
		yes := true
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: n, Labels: map[string]string{"app": "api"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "api-5d4f8", Controller: &yes}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending}}
	}
	fs := runWorkloads(t, []app{a}, pending("api-p1"), pending("api-p2"))
	logFindings(t, fs)
	if len(rulesBy(t, fs)["Deployment/api"]) == 0 {
		t.Errorf("the only running pod of api (behind Service api, no PDB) is evicted by the drain of n1 with nothing else serving: want a finding")
	}
}

// Mid-rollout: the old ReplicaSet's pods (revision 9, with a probe) sort
// before the new one's (revision 10, no probe, an emptyDir); the rules read
// the first pod by name, the old template.
func TestWorkloadsMidRolloutJudgesTheNewTemplate(t *testing.T) {
	yes := true
	reps := int32(3)
	objs := []runtime.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: appsv1.DeploymentSpec{Replicas: &reps}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-aaaa", Annotations: map[string]string{"deployment.kubernetes.io/revision": "9"}, OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "web", Controller: &yes}}}},
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-bbbb", Annotations: map[string]string{"deployment.kubernetes.io/revision": "10"}, OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: "web", Controller: &yes}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}},
	}
	one := intstr.FromInt32(1)
	objs = append(objs, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}})
	mk := func(name, rs, node string, probe bool) *corev1.Pod {
		c := corev1.Container{Name: "main", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}
		var vols []corev1.Volume
		if probe {
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
		} else {
			vols = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: rs, Controller: &yes}}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{c}, Volumes: vols,
				TopologySpreadConstraints: []corev1.TopologySpreadConstraint{spread(corev1.LabelHostname, corev1.DoNotSchedule, "web")}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	}
	objs = append(objs, mk("web-aaaa-1", "web-aaaa", "n1", true), mk("web-aaaa-2", "web-aaaa", "n2", true), mk("web-bbbb-1", "web-bbbb", "n3", false))
	fs := CheckWorkloads(context.Background(), fake.NewClientset(append(wlNodes(), objs...)...), WorkloadsPolicy{}, "")
	logFindings(t, fs)
	got := strings.Join(rulesBy(t, fs)["Deployment/web"], ",")
	if !strings.Contains(got, RuleEmptyDir) || !strings.Contains(got, RuleNoReadinessProbe) {
		t.Errorf("pod web-bbbb-1 (current template) has an emptyDir and no readiness probe; got rules %q", got)
	}
}

// DoNotSchedule with maxSkew 3 lets 3 pods share a node; no nodeSelector at
// all: the finding blamed the nodeSelector and asked to change it.
func TestWorkloadsOneNodeSaysWhySpreadFailed(t *testing.T) {
	a := healthy("q")
	a.nodes = []string{"n1", "n1", "n1"}
	a.spec = func(s *corev1.PodSpec) { s.TopologySpreadConstraints[0].MaxSkew = 3 }
	fs := runWorkloads(t, []app{a})
	found := false
	for _, f := range fs {
		if f.Rule != RuleOneNode {
			continue
		}
		found = true
		if strings.Contains(f.Message, "nodeSelector") || !strings.Contains(f.Message, "maxSkew 3 lets all 3 pods share one node") || !strings.Contains(f.Fix, "maxSkew: 1") {
			t.Errorf("the cause is maxSkew 3 >= 3 replicas: %q, fix %q", f.Message, f.Fix)
		}
	}
	if !found {
		t.Errorf("no one-node finding: %+v", fs)
	}
}
