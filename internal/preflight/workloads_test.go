package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// The test cluster's nodes: zones a, b and c have nodes of groups g1 and
// g2; zone d only of g2 (a zone node group g2 may empty).
func wlNodes() []runtime.Object {
	var out []runtime.Object
	for _, n := range []struct{ name, zone, group string }{
		{"n1", "a", "g1"}, {"n2", "b", "g1"}, {"n3", "c", "g1"}, {"n4", "a", "g1"},
		{"n5", "d", "g2"}, {"n6", "a", "g2"}, {"n7", "b", "g2"}, {"n8", "c", "g2"},
	} {
		out = append(out, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{
			"kops.k8s.io/instancegroup": n.group, corev1.LabelTopologyZone: n.zone, corev1.LabelHostname: n.name}}})
	}
	return out
}

// app is a workload of the test cluster and the objects it makes.
type app struct {
	ns, name, kind string // kind: Deployment, StatefulSet or Pod
	nodes          []string
	replicas       int32 // default len(nodes)
	service        bool
	pdb            *policyv1.PodDisruptionBudgetSpec
	expected       int32 // the PDB's status.expectedPods
	spec           func(*corev1.PodSpec)
	pod            func(i int, p *corev1.Pod)
}

// healthy is a workload that gives no finding: 3 replicas spread on nodes
// of three zones, a PDB of maxUnavailable 1, a readiness probe, a Service.
func healthy(name string) app {
	one := intstr.FromInt32(1)
	return app{ns: "shop", name: name, kind: "Deployment", nodes: []string{"n1", "n2", "n3"}, service: true,
		pdb: &policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one}}
}

func spread(key string, when corev1.UnsatisfiableConstraintAction, app string) corev1.TopologySpreadConstraint {
	return corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: key, WhenUnsatisfiable: when,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}}
}

func (a app) objects() []runtime.Object {
	replicas := a.replicas
	if replicas == 0 {
		replicas = int32(len(a.nodes))
	}
	sel := map[string]string{"app": a.name}
	spec := corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: "app:1",
			Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}}}},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{spread(corev1.LabelHostname, corev1.DoNotSchedule, a.name)},
	}
	if a.spec != nil {
		a.spec(&spec)
	}
	var out []runtime.Object
	yes := true
	var owner []metav1.OwnerReference
	switch a.kind {
	case "Deployment":
		out = append(out,
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: a.name}, Spec: appsv1.DeploymentSpec{Replicas: &replicas}},
			&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: a.name + "-5d4f8", OwnerReferences: []metav1.OwnerReference{{Kind: "Deployment", Name: a.name, Controller: &yes}}},
				Spec: appsv1.ReplicaSetSpec{Replicas: &replicas}})
		owner = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: a.name + "-5d4f8", Controller: &yes}}
	case "StatefulSet":
		out = append(out, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: a.name}, Spec: appsv1.StatefulSetSpec{Replicas: &replicas}})
		owner = []metav1.OwnerReference{{Kind: "StatefulSet", Name: a.name, Controller: &yes}}
	case "Pod":
	default:
		owner = []metav1.OwnerReference{{Kind: a.kind, Name: a.name, Controller: &yes}}
	}
	for i, n := range a.nodes {
		name := fmt.Sprintf("%s-%d", a.name, i)
		if a.kind == "Pod" {
			name = a.name
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: name, Labels: sel, OwnerReferences: owner},
			Spec:       *spec.DeepCopy(),
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}
		p.Spec.NodeName = n
		if a.pod != nil {
			a.pod(i, p)
		}
		out = append(out, p)
	}
	if a.service {
		out = append(out, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: a.name}, Spec: corev1.ServiceSpec{Selector: sel}})
	}
	if a.pdb != nil {
		spec := *a.pdb
		spec.Selector = &metav1.LabelSelector{MatchLabels: sel}
		out = append(out, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: a.name}, Spec: spec,
			Status: policyv1.PodDisruptionBudgetStatus{ExpectedPods: a.expected}})
	}
	return out
}

// zonalPV is a PV of the EBS CSI driver in zone, bound to claim.
func zonalPV(name, zone, ns, claim string) []runtime.Object {
	return []runtime.Object{
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "ebs.csi.aws.com", VolumeHandle: "vol-" + name}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: ebsZoneKey, Operator: corev1.NodeSelectorOpIn, Values: []string{zone}}}}}}}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: claim}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: name}},
	}
}

func wlCluster(apps []app, extra ...runtime.Object) *fake.Clientset {
	objs := wlNodes()
	for _, a := range apps {
		objs = append(objs, a.objects()...)
	}
	return fake.NewClientset(append(objs, extra...)...)
}

// rulesBy maps "Kind/name" to the rules found for it.
func rulesBy(t *testing.T, fs []Finding) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, f := range fs {
		if f.Severity == Unknown {
			t.Errorf("unknown finding %+v", f)
		}
		if f.Rule == "" {
			continue
		}
		if f.Check != FamilyWorkloads || f.Namespace == "" || f.Workload == "" || f.Effect == "" || f.Fix == "" || strings.HasPrefix(f.Message, f.Rule+": ") || !strings.HasPrefix(f.text(), f.Rule+": ") {
			t.Errorf("incomplete finding %+v", f)
		}
		out[f.Workload] = append(out[f.Workload], f.Rule)
	}
	for _, r := range out {
		sort.Strings(r)
	}
	return out
}

// TestCheckWorkloads: one namespace holding one workload of each rule and a
// healthy one; each is found with its rule only, the healthy one not at
// all, and the pods a drain leaves alone (or the policy excludes) neither.
func TestCheckWorkloads(t *testing.T) {
	zero := intstr.FromInt32(0)
	apps := []app{
		healthy("web"),
		func() app { a := healthy("solo"); a.nodes = []string{"n1"}; return a }(),
		func() app {
			a := healthy("packed")
			a.nodes = []string{"n1", "n1", "n1"}
			a.spec = func(s *corev1.PodSpec) { s.TopologySpreadConstraints = nil }
			return a
		}(),
		func() app {
			a := healthy("zoned")
			a.nodes = []string{"n1", "n4"}
			a.spec = func(s *corev1.PodSpec) {
				s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spread(corev1.LabelTopologyZone, corev1.ScheduleAnyway, "zoned")}
			}
			return a
		}(),
		func() app { a := healthy("nopdb"); a.nodes = []string{"n2", "n3"}; a.pdb = nil; return a }(),
		func() app { a := healthy("frozen"); a.pdb.MaxUnavailable = &zero; return a }(),
		func() app {
			a := healthy("blind")
			a.spec = func(s *corev1.PodSpec) { s.Containers[0].ReadinessProbe = nil }
			return a
		}(),
		func() app {
			a := healthy("slow")
			a.spec = func(s *corev1.PodSpec) { s.TerminationGracePeriodSeconds = ptr.To[int64](3600) }
			return a
		}(),
		func() app {
			a := healthy("sleepy")
			a.spec = func(s *corev1.PodSpec) {
				s.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "sleep 45 && nginx -s quit"}}}}
			}
			return a
		}(),
		func() app {
			a := healthy("scratch")
			a.spec = func(s *corev1.PodSpec) {
				s.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			}
			return a
		}(),
		{ns: "shop", name: "debug", kind: "Pod", nodes: []string{"n1"}},
		func() app {
			a := healthy("db")
			a.kind, a.nodes = "StatefulSet", []string{"n2", "n3", "n5"}
			a.pod = func(i int, p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: fmt.Sprintf("data-db-%d", i)}}}}
			}
			return a
		}(),
		// Left alone: a DaemonSet's pod, a mirror pod, a finished pod, a
		// Job's pod, a terminating pod, a pending one, an excluded
		// namespace. Each would otherwise be no-controller or emptydir.
		{ns: "shop", name: "agent", kind: "DaemonSet", nodes: []string{"n1"}, spec: func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}},
		{ns: "shop", name: "static", kind: "Pod", nodes: []string{"n1"}, pod: func(_ int, p *corev1.Pod) {
			p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
		}},
		{ns: "shop", name: "done", kind: "Pod", nodes: []string{"n1"}, pod: func(_ int, p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }},
		{ns: "shop", name: "migrate", kind: "Job", nodes: []string{"n1"}, spec: func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}},
		{ns: "shop", name: "leaving", kind: "Pod", nodes: []string{"n1"}, pod: func(_ int, p *corev1.Pod) {
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
			p.Finalizers = []string{"example.com/hold"}
		}},
		{ns: "shop", name: "pending", kind: "Pod", nodes: []string{""}},
		{ns: "kube-system", name: "tool", kind: "Pod", nodes: []string{"n1"}},
	}
	var pvs []runtime.Object
	for i, z := range []string{"b", "c", "d"} {
		pvs = append(pvs, zonalPV(fmt.Sprintf("pv-%d", i), z, "shop", fmt.Sprintf("data-db-%d", i))...)
	}
	cs := wlCluster(apps, pvs...)
	p := WorkloadsPolicy{MaxUnavailable: 2, ExcludeNamespaces: []string{"kube-system"}}
	fs := CheckWorkloads(context.Background(), cs, p, "")
	got := rulesBy(t, fs)
	want := map[string][]string{
		"Deployment/solo":    {RuleSingleReplicaService},
		"Deployment/packed":  {RuleOneNode},
		"Deployment/zoned":   {RuleOneZone},
		"Deployment/nopdb":   {RuleNoPDB},
		"Deployment/frozen":  {RulePDBBlocks},
		"Deployment/blind":   {RuleNoReadinessProbe},
		"Deployment/slow":    {RuleGraceOverDrainTimeout},
		"Deployment/sleepy":  {RulePreStopOverGrace},
		"Deployment/scratch": {RuleEmptyDir},
		"Pod/debug":          {RuleNoController},
		"StatefulSet/db":     {RuleZonalVolume},
	}
	for w, rules := range want {
		if !slices.Equal(got[w], rules) {
			t.Errorf("%s: rules %v, want %v", w, got[w], rules)
		}
	}
	for w, rules := range got {
		if _, ok := want[w]; !ok {
			t.Errorf("%s: unexpected rules %v", w, rules)
		}
	}
	// Each workload's rule named once: every rule of the family is covered.
	var covered []string
	for _, r := range want {
		covered = append(covered, r...)
	}
	for _, r := range WorkloadRules {
		if !slices.Contains(covered, r) {
			t.Errorf("rule %s not covered", r)
		}
	}
	by := map[string]Finding{}
	for _, f := range fs {
		by[f.Workload] = f
	}
	for w, sub := range map[string]string{
		"Deployment/zoned":  "ScheduleAnyway only scores nodes",
		"Deployment/frozen": "maxUnavailable 0",
		"Deployment/sleepy": "sleeps 45s, longer than terminationGracePeriodSeconds 30",
		"StatefulSet/db":    "db-2 (PVC data-db-2) are bound to volumes in zone d, whose nodes are all in node group g2",
		"Deployment/nopdb":  "its 2 ready pods are on 2 node(s) of node group g1",
	} {
		if f := by[w]; !strings.Contains(f.Message, sub) {
			t.Errorf("%s: message %q lacks %q", w, f.Message, sub)
		}
	}
	if f := by["Deployment/frozen"]; !strings.Contains(f.Effect, "--drain-timeout 15m0s") || f.Object != "Deployment shop/frozen" || f.Severity != Warning {
		t.Errorf("frozen: %+v", f)
	}
	if f := fs[len(fs)-1]; f.Severity != Info || !strings.Contains(f.Message, "judged 12 workloads") {
		t.Errorf("summary %+v", f)
	}
}

// TestWorkloadsPlacementEdges: what keeps pods apart, and how many nodes one
// roll step drains.
func TestWorkloadsPlacementEdges(t *testing.T) {
	antiAffinity := func(key string, required bool) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) {
			s.TopologySpreadConstraints = nil
			term := corev1.PodAffinityTerm{TopologyKey: key, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}}
			s.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{}}
			if required {
				s.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = []corev1.PodAffinityTerm{term}
			} else {
				s.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: term}}
			}
		}
	}
	for _, tc := range []struct {
		name  string
		nodes []string
		spec  func(*corev1.PodSpec)
		pdb   bool
		max   PolicyCount
		want  []string
		msg   string
	}{
		// On one node although required anti-affinity keeps them apart
		// (pods pending elsewhere): transient, not reported.
		{"required hostname", []string{"n1", "n1"}, antiAffinity(corev1.LabelHostname, true), true, 0, nil, ""},
		{"required zone keeps nodes apart", []string{"n1", "n1"}, antiAffinity(corev1.LabelTopologyZone, true), true, 0, nil, ""},
		{"preferred hostname", []string{"n1", "n1"}, antiAffinity(corev1.LabelHostname, false), true, 0, []string{RuleOneNode}, "preferred podAntiAffinity on kubernetes.io/hostname only scores nodes"},
		{"ScheduleAnyway", []string{"n1", "n1"}, func(s *corev1.PodSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spread(corev1.LabelHostname, corev1.ScheduleAnyway, "x")}
		}, true, 0, []string{RuleOneNode}, "ScheduleAnyway only scores"},
		{"spread selecting other pods", []string{"n1", "n1"}, func(s *corev1.PodSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spread(corev1.LabelHostname, corev1.DoNotSchedule, "other")}
		}, true, 0, []string{RuleOneNode}, "all 2 pods on node n1"},
		// A DoNotSchedule spread on hostname that did not keep them apart
		// (its nodeSelector allows one node, and the scheduler counts only
		// the nodes it allows): all on one node is reported whatever the
		// template says (the rule looked for the
		// constraint, not at where the pods are).
		{"DoNotSchedule on one allowed node", []string{"n1", "n1"}, func(s *corev1.PodSpec) {
			s.NodeSelector = map[string]string{corev1.LabelHostname: "n1"}
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spread(corev1.LabelHostname, corev1.DoNotSchedule, "x")}
		}, true, 0, []string{RuleOneNode}, "did not keep them apart"},
		{"zone DoNotSchedule in one allowed zone", []string{"n1", "n4"}, func(s *corev1.PodSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spread(corev1.LabelTopologyZone, corev1.DoNotSchedule, "x")}
		}, true, 0, []string{RuleOneZone}, "did not keep them apart"},
		// One node, no PDB: one-node and no-pdb both (the placement and the
		// missing budget are two fixes).
		{"one node no pdb", []string{"n1", "n1"}, func(s *corev1.PodSpec) { s.TopologySpreadConstraints = nil }, false, 0, []string{RuleNoPDB, RuleOneNode}, "evicts all of them at once"},
		// Two nodes of one group, no PDB: one node drained at a time does
		// not take both, two do.
		{"two nodes max 1", []string{"n2", "n3"}, nil, false, 1, nil, ""},
		{"two nodes max 2", []string{"n2", "n3"}, nil, false, 2, []string{RuleNoPDB}, "--max-unavailable 2"},
		// Two node groups: a step drains nodes of one group only.
		{"two groups max 2", []string{"n2", "n8"}, nil, false, 2, nil, ""},
		// Zone: n1 and n4 are zone a; a required zone anti-affinity keeps.
		{"zone required", []string{"n1", "n4"}, antiAffinity(corev1.LabelTopologyZone, true), true, 0, nil, ""},
		{"zone by hostname only", []string{"n1", "n4"}, nil, true, 0, []string{RuleOneZone}, "zone a (of 4 zones)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := healthy("x")
			a.nodes, a.spec = tc.nodes, tc.spec
			if !tc.pdb {
				a.pdb = nil
			}
			fs := CheckWorkloads(context.Background(), wlCluster([]app{a}), WorkloadsPolicy{MaxUnavailable: tc.max}, "")
			got := rulesBy(t, fs)["Deployment/x"]
			if !slices.Equal(got, tc.want) {
				t.Fatalf("rules %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.msg != "" && !slices.ContainsFunc(fs, func(f Finding) bool {
				return strings.Contains(f.Message, tc.msg) || strings.Contains(f.Effect, tc.msg)
			}) {
				t.Errorf("no finding says %q: %+v", tc.msg, fs)
			}
		})
	}
}

// TestWorkloadsPDBEdges: the budgets that never allow an eviction.
func TestWorkloadsPDBEdges(t *testing.T) {
	one, two, three, all, half := intstr.FromInt32(1), intstr.FromInt32(2), intstr.FromInt32(3), intstr.FromString("100%"), intstr.FromString("50%")
	for _, tc := range []struct {
		name     string
		pdb      policyv1.PodDisruptionBudgetSpec
		expected int32
		blocks   bool
	}{
		{"maxUnavailable 1", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one}, 3, false},
		{"minAvailable 100%", policyv1.PodDisruptionBudgetSpec{MinAvailable: &all}, 3, true},
		{"minAvailable 50%", policyv1.PodDisruptionBudgetSpec{MinAvailable: &half}, 3, false},
		{"minAvailable 2 of 3", policyv1.PodDisruptionBudgetSpec{MinAvailable: &two}, 3, false},
		{"minAvailable 3 of 3", policyv1.PodDisruptionBudgetSpec{MinAvailable: &three}, 3, true},
		// Expected pods not counted yet: judged against spec.replicas.
		{"minAvailable 3, status empty", policyv1.PodDisruptionBudgetSpec{MinAvailable: &three}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := healthy("x")
			a.pdb, a.expected = &tc.pdb, tc.expected
			got := rulesBy(t, CheckWorkloads(context.Background(), wlCluster([]app{a}), WorkloadsPolicy{}, ""))["Deployment/x"]
			if blocks := slices.Contains(got, RulePDBBlocks); blocks != tc.blocks {
				t.Errorf("pdb-blocks %v, want %v (%v)", blocks, tc.blocks, got)
			}
		})
	}
	// Two PDBs select the pods: the Eviction API refuses.
	a := healthy("x")
	extra := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "x-too"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{}}} // empty: every pod of shop
	fs := CheckWorkloads(context.Background(), wlCluster([]app{a}, extra), WorkloadsPolicy{}, "")
	if !slices.ContainsFunc(fs, func(f Finding) bool {
		return f.Rule == RulePDBBlocks && strings.Contains(f.Message, "2 PDBs (x, x-too)")
	}) {
		t.Errorf("two PDBs: %+v", fs)
	}
}

// TestWorkloadsTerminationEdges: grace against the drain timeout, preStop
// against the grace period.
func TestWorkloadsTerminationEdges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grace   *int64
		preStop *corev1.LifecycleHandler
		drain   time.Duration
		want    []string
	}{
		{"default grace", nil, nil, 0, nil},
		{"grace equal to drain timeout", ptr.To[int64](900), nil, 0, nil},
		{"grace over drain timeout", ptr.To[int64](901), nil, 0, []string{RuleGraceOverDrainTimeout}},
		{"policy drain timeout", ptr.To[int64](120), nil, time.Minute, []string{RuleGraceOverDrainTimeout}},
		{"sleep action over grace", nil, &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 31}}, 0, []string{RulePreStopOverGrace}},
		{"sleep action at grace", nil, &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 30}}, 0, nil},
		{"exec sleep under long grace", ptr.To[int64](120), &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sleep", "60"}}}, 0, nil},
		{"exec unreadable", nil, &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/drain.sh"}}}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := healthy("x")
			a.spec = func(s *corev1.PodSpec) {
				s.TerminationGracePeriodSeconds = tc.grace
				if tc.preStop != nil {
					s.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: tc.preStop}
				}
			}
			got := rulesBy(t, CheckWorkloads(context.Background(), wlCluster([]app{a}), WorkloadsPolicy{DrainTimeout: PolicyDuration(tc.drain)}, ""))["Deployment/x"]
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPreStopSeconds(t *testing.T) {
	exec := func(cmd ...string) *corev1.Lifecycle {
		return &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: cmd}}}
	}
	for _, tc := range []struct {
		l    *corev1.Lifecycle
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{&corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{}}, 0, false},
		{&corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 20}}}, 20, true},
		{exec("sleep", "15"), 15, true},
		{exec("/bin/sleep", "2m"), 120, true},
		{exec("/bin/sh", "-c", "sleep 5; kill -TERM 1; sleep 10"), 15, true},
		{exec("sh", "-c", "echo going && sleep 1.5"), 1.5, true},
		{exec("nginx", "-s", "quit"), 0, false},
		{exec("sh", "-c", "nosleep 30"), 0, false},
	} {
		got, ok := preStopSeconds(tc.l)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%+v: %v %v, want %v %v", tc.l, got, ok, tc.want, tc.ok)
		}
	}
}

// TestWorkloadsServiceEdges: the rules that need a Service, and the
// containers a readiness probe is looked for in.
func TestWorkloadsServiceEdges(t *testing.T) {
	noService := healthy("x")
	noService.service, noService.nodes = false, []string{"n1"}
	noService.spec = func(s *corev1.PodSpec) { s.Containers[0].ReadinessProbe = nil }
	if got := rulesBy(t, CheckWorkloads(context.Background(), wlCluster([]app{noService}), WorkloadsPolicy{}, ""))["Deployment/x"]; got != nil {
		t.Errorf("without a Service: %v", got)
	}
	// A sidecar declaring no port with no probe does not count; a startup
	// probe gates readiness too.
	sidecar := healthy("x")
	sidecar.spec = func(s *corev1.PodSpec) {
		s.Containers[0].ReadinessProbe, s.Containers[0].StartupProbe = nil, &corev1.Probe{}
		s.Containers = append(s.Containers, corev1.Container{Name: "log-shipper"})
	}
	if got := rulesBy(t, CheckWorkloads(context.Background(), wlCluster([]app{sidecar}), WorkloadsPolicy{}, ""))["Deployment/x"]; got != nil {
		t.Errorf("sidecar: %v", got)
	}
	// A Service in another namespace, or selecting other labels, is not
	// the workload's.
	single := healthy("x")
	single.service, single.nodes = false, []string{"n1"}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "x"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "x"}}}
	wider := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "y"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "x", "tier": "front"}}}
	if got := rulesBy(t, CheckWorkloads(context.Background(), wlCluster([]app{single}, other, wider), WorkloadsPolicy{}, ""))["Deployment/x"]; got != nil {
		t.Errorf("other Services: %v", got)
	}
}

// TestWorkloadsZonalVolumeEdges: a zone with nodes of two groups is not
// emptied by one; an in-tree EBS PV gives its zone by label.
func TestWorkloadsZonalVolumeEdges(t *testing.T) {
	a := healthy("db")
	a.kind, a.nodes = "StatefulSet", []string{"n1", "n5"}
	a.spec = func(s *corev1.PodSpec) { s.TopologySpreadConstraints = nil }
	a.pod = func(i int, p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: fmt.Sprintf("data-db-%d", i)}}}}
	}
	inTree := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-1", Labels: map[string]string{corev1.LabelTopologyZone: "d"}},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{AWSElasticBlockStore: &corev1.AWSElasticBlockStoreVolumeSource{VolumeID: "vol-1"}}}}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "data-db-1"}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1"}}
	objs := append(zonalPV("pv-0", "a", "shop", "data-db-0"), inTree, claim)
	fs := CheckWorkloads(context.Background(), wlCluster([]app{a}, objs...), WorkloadsPolicy{}, "")
	var zonal []Finding
	for _, f := range fs {
		if f.Rule == RuleZonalVolume {
			zonal = append(zonal, f)
		}
	}
	if len(zonal) != 1 || !strings.Contains(zonal[0].Message, "db-1 (PVC data-db-1)") || strings.Contains(zonal[0].Message, "db-0") {
		t.Errorf("zonal findings %+v", zonal)
	}
}

// TestWorkloadsPolicySeverity: the policy's severities, off included.
func TestWorkloadsPolicySeverity(t *testing.T) {
	a := healthy("x")
	a.spec = func(s *corev1.PodSpec) {
		s.Containers[0].ReadinessProbe = nil
		s.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		s.TerminationGracePeriodSeconds = ptr.To[int64](3600)
	}
	p := WorkloadsPolicy{Severity: RuleSeverities{RuleNoReadinessProbe: Info, RuleEmptyDir: Off, RuleGraceOverDrainTimeout: Blocker}}
	sev := map[string]Severity{}
	for _, f := range CheckWorkloads(context.Background(), wlCluster([]app{a}), p, "") {
		if f.Rule != "" {
			sev[f.Rule] = f.Severity
		}
	}
	want := map[string]Severity{RuleNoReadinessProbe: Info, RuleGraceOverDrainTimeout: Blocker}
	if fmt.Sprint(sev) != fmt.Sprint(want) {
		t.Errorf("severities %v, want %v", sev, want)
	}
}

// TestWorkloadsListErrors: without pods the family is unknown; without
// PersistentVolumes only zonal-volume is not judged.
func TestWorkloadsListErrors(t *testing.T) {
	a := healthy("x")
	a.spec = func(s *corev1.PodSpec) { s.Containers[0].ReadinessProbe = nil }
	cs := wlCluster([]app{a})
	cs.PrependReactor("list", "persistentvolumes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	fs := CheckWorkloads(context.Background(), cs, WorkloadsPolicy{}, "")
	var unknown []string
	rules := map[string]bool{}
	for _, f := range fs {
		if f.Severity == Unknown {
			unknown = append(unknown, f.Message)
		}
		rules[f.Rule] = true
	}
	if len(unknown) != 1 || !strings.Contains(unknown[0], "not judged: zonal-volume") || !rules[RuleNoReadinessProbe] {
		t.Errorf("unknown %v, rules %v", unknown, rules)
	}
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	fs = CheckWorkloads(context.Background(), cs, WorkloadsPolicy{}, "")
	if len(fs) != 1 || fs[0].Severity != Unknown || fs[0].Object != "pods" {
		t.Errorf("without pods: %+v", fs)
	}
}

// TestListAllPages: every page is read, each asked with the last Continue.
func TestListAllPages(t *testing.T) {
	pages := map[string]*corev1.PodList{
		"":   {ListMeta: metav1.ListMeta{Continue: "p2"}, Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}}},
		"p2": {ListMeta: metav1.ListMeta{Continue: "p3"}, Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "b"}}}},
		"p3": {Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "c"}}}},
	}
	var limits []int64
	pods, err := listAll(context.Background(), func(_ context.Context, o metav1.ListOptions) (*corev1.PodList, error) {
		limits = append(limits, o.Limit)
		return pages[o.Continue], nil
	}, func(l *corev1.PodList) []corev1.Pod { return l.Items })
	if err != nil || len(pods) != 3 || pods[2].Name != "c" || !slices.Equal(limits, []int64{500, 500, 500}) {
		t.Errorf("pods %v, err %v, limits %v", pods, err, limits)
	}
}

// benchCluster is a cluster of deployments Deployments of podsEach pods
// each (with their ReplicaSets, Services and PDBs) on nodes nodes in three
// zones and ten node groups.
func benchCluster(deployments, podsEach, nodes int) *fake.Clientset {
	objs := make([]runtime.Object, 0, nodes+deployments*(4+podsEach))
	for i := range nodes {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i), Labels: map[string]string{
			"kops.k8s.io/instancegroup": fmt.Sprintf("g%d", i%10), corev1.LabelTopologyZone: fmt.Sprintf("z%d", i%3)}}})
	}
	one := intstr.FromInt32(1)
	for d := range deployments {
		a := app{ns: fmt.Sprintf("ns-%d", d%50), name: fmt.Sprintf("app-%d", d), kind: "Deployment", service: true,
			pdb: &policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one}, expected: int32(podsEach)}
		for p := range podsEach {
			a.nodes = append(a.nodes, fmt.Sprintf("node-%d", (d*7+p*13)%nodes))
		}
		switch d % 10 { // some findings to make
		case 0: // one-node, no-pdb
			a.pdb = nil
			a.spec = func(s *corev1.PodSpec) { s.TopologySpreadConstraints = nil }
			for p := range a.nodes {
				a.nodes[p] = a.nodes[0]
			}
		case 1: // no-readiness-probe
			a.spec = func(s *corev1.PodSpec) { s.Containers[0].ReadinessProbe = nil }
		}
		objs = append(objs, a.objects()...)
	}
	return fake.NewClientset(objs...)
}

// BenchmarkCheckWorkloads: 2,000 Deployments of 20 pods (40,000 pods) on
// 2,000 nodes, with 2,000 ReplicaSets, Services and PDBs, read from the
// fake clientset (whose lists copy every object, as decoding would
// allocate them). -short: a tenth of that.
func BenchmarkCheckWorkloads(b *testing.B) {
	deployments, nodes := 2000, 2000
	if testing.Short() {
		deployments, nodes = 200, 200
	}
	cs := benchCluster(deployments, 20, nodes)
	b.ReportAllocs()
	for b.Loop() {
		fs := CheckWorkloads(context.Background(), cs, WorkloadsPolicy{}, "")
		if len(fs) != 3*deployments/10+1 {
			b.Fatalf("%d findings: %+v", len(fs), fs[len(fs)-1])
		}
	}
}
