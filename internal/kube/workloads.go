package kube

import (
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The workload informers store compact types, Deployment, StatefulSet and
// DaemonSet, holding what the workloads collector reads of a controller:
// its replica count, its update strategy and its status counters. A
// stripped appsv1 object still carried its whole zero pod template, spec
// and status inline: an appsv1.Deployment is 1,232 bytes before its
// metadata strings (1,280 allocated), a StatefulSet 1,312, a DaemonSet
// 1,208; the compact types are 96 at most, 104 for the Deployment with its
// gate hold mark (TestWorkloadSize). Stored from
// decoded objects, with their strings and store keys, 2,000 Deployments took
// 1,430 bytes of heap each and take 228; StatefulSets 1,558 and 228;
// DaemonSets 1,492 and 276 (TestWorkloadStoreHeap).
//
// The strategy's maxSurge and maxUnavailable are kept as the API gives them
// (nil where unset): the collector resolves them as the controllers do. A
// stored object is shared by every reader of the cache and must never be
// modified.

// Deployment is what the Deployment informer stores of an
// appsv1.Deployment (StripDeployment).
type Deployment struct {
	Meta
	// Replicas is spec.replicas, 1 where unset: the API server's default
	// (SetDefaults_Deployment, k8s.io/kubernetes pkg/apis/apps/v1/defaults.go),
	// so unset only in objects that never went through it.
	Replicas int32
	// AvailableReplicas, ReadyReplicas and UpdatedReplicas are the status
	// counters of the same names.
	AvailableReplicas, ReadyReplicas, UpdatedReplicas int32
	// Strategy is spec.strategy.type: RollingUpdate or Recreate.
	Strategy appsv1.DeploymentStrategyType
	// MaxSurge and MaxUnavailable are spec.strategy.rollingUpdate's, nil
	// where unset.
	MaxSurge, MaxUnavailable *intstr.IntOrString
	// GateHold is whether the Deployment is gate hold's own (IsGateHold of
	// its labels or of its pod template's labels): its pods are ready only
	// on GO, so the gate sets it aside.
	GateHold bool
}

// StatefulSet is what the StatefulSet informer stores of an
// appsv1.StatefulSet (StripStatefulSet).
type StatefulSet struct {
	Meta
	// Replicas is spec.replicas, 1 where unset (the API server's default,
	// SetDefaults_StatefulSet).
	Replicas int32
	// AvailableReplicas, ReadyReplicas and UpdatedReplicas are the status
	// counters of the same names.
	AvailableReplicas, ReadyReplicas, UpdatedReplicas int32
	// Strategy is spec.updateStrategy.type: RollingUpdate or OnDelete.
	Strategy appsv1.StatefulSetUpdateStrategyType
	// MaxUnavailable is spec.updateStrategy.rollingUpdate.maxUnavailable,
	// nil where unset.
	MaxUnavailable *intstr.IntOrString
}

// DaemonSet is what the DaemonSet informer stores of an appsv1.DaemonSet
// (StripDaemonSet). The aws-node DaemonSet's informer (AWSNode) is another
// one, which keeps the VPC CNI's settings of its pod template.
type DaemonSet struct {
	Meta
	// DesiredNumberScheduled, NumberAvailable, NumberReady and
	// UpdatedNumberScheduled are the status counters of the same names.
	DesiredNumberScheduled, NumberAvailable, NumberReady, UpdatedNumberScheduled int32
	// Strategy is spec.updateStrategy.type: RollingUpdate or OnDelete.
	Strategy appsv1.DaemonSetUpdateStrategyType
	// MaxUnavailable and MaxSurge are spec.updateStrategy.rollingUpdate's,
	// nil where unset.
	MaxUnavailable, MaxSurge *intstr.IntOrString
}

// StripDeployment is the Deployment informer's transform: it turns an
// *appsv1.Deployment into a *Deployment. Other objects (one already
// stripped, cache.DeletedFinalStateUnknown) pass through unchanged.
func StripDeployment(obj any) (any, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return obj, nil
	}
	out := &Deployment{
		Meta:              metaOf(&d.ObjectMeta),
		Replicas:          replicas(d.Spec.Replicas),
		AvailableReplicas: d.Status.AvailableReplicas,
		ReadyReplicas:     d.Status.ReadyReplicas,
		UpdatedReplicas:   d.Status.UpdatedReplicas,
		Strategy: internString(d.Spec.Strategy.Type,
			appsv1.RollingUpdateDeploymentStrategyType, appsv1.RecreateDeploymentStrategyType),
		GateHold: IsGateHold(d.Labels) || IsGateHold(d.Spec.Template.Labels),
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		out.MaxSurge, out.MaxUnavailable = ru.MaxSurge, ru.MaxUnavailable
	}
	return out, nil
}

// StripStatefulSet is the StatefulSet informer's transform: it turns an
// *appsv1.StatefulSet into a *StatefulSet. Other objects pass through
// unchanged.
func StripStatefulSet(obj any) (any, error) {
	s, ok := obj.(*appsv1.StatefulSet)
	if !ok {
		return obj, nil
	}
	out := &StatefulSet{
		Meta:              metaOf(&s.ObjectMeta),
		Replicas:          replicas(s.Spec.Replicas),
		AvailableReplicas: s.Status.AvailableReplicas,
		ReadyReplicas:     s.Status.ReadyReplicas,
		UpdatedReplicas:   s.Status.UpdatedReplicas,
		Strategy: internString(s.Spec.UpdateStrategy.Type,
			appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType),
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		out.MaxUnavailable = ru.MaxUnavailable
	}
	return out, nil
}

// StripDaemonSet is the DaemonSet informer's transform: it turns an
// *appsv1.DaemonSet into a *DaemonSet. Other objects pass through
// unchanged.
func StripDaemonSet(obj any) (any, error) {
	d, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return obj, nil
	}
	out := &DaemonSet{
		Meta:                   metaOf(&d.ObjectMeta),
		DesiredNumberScheduled: d.Status.DesiredNumberScheduled,
		NumberAvailable:        d.Status.NumberAvailable,
		NumberReady:            d.Status.NumberReady,
		UpdatedNumberScheduled: d.Status.UpdatedNumberScheduled,
		Strategy: internString(d.Spec.UpdateStrategy.Type,
			appsv1.RollingUpdateDaemonSetStrategyType, appsv1.OnDeleteDaemonSetStrategyType),
	}
	if ru := d.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		out.MaxUnavailable, out.MaxSurge = ru.MaxUnavailable, ru.MaxSurge
	}
	return out, nil
}

// replicas is spec.replicas with the API server's default of 1.
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// internString returns the constant among known that equals v, rather than
// the decoder's copy of the string, or v when none does.
func internString[T ~string](v T, known ...T) T {
	for _, k := range known {
		if v == k {
			return k
		}
	}
	return v
}

// DeepCopyObject returns a copy of d that shares nothing with it.
func (d *Deployment) DeepCopyObject() runtime.Object {
	if d == nil {
		return nil
	}
	c := *d
	c.MaxSurge, c.MaxUnavailable = copyIntOrString(d.MaxSurge), copyIntOrString(d.MaxUnavailable)
	return &c
}

// DeepCopyObject returns a copy of s that shares nothing with it.
func (s *StatefulSet) DeepCopyObject() runtime.Object {
	if s == nil {
		return nil
	}
	c := *s
	c.MaxUnavailable = copyIntOrString(s.MaxUnavailable)
	return &c
}

// DeepCopyObject returns a copy of d that shares nothing with it.
func (d *DaemonSet) DeepCopyObject() runtime.Object {
	if d == nil {
		return nil
	}
	c := *d
	c.MaxUnavailable, c.MaxSurge = copyIntOrString(d.MaxUnavailable), copyIntOrString(d.MaxSurge)
	return &c
}

func copyIntOrString(v *intstr.IntOrString) *intstr.IntOrString {
	if v == nil {
		return nil
	}
	c := *v
	return &c
}

var (
	_ runtime.Object = (*Deployment)(nil)
	_ runtime.Object = (*StatefulSet)(nil)
	_ runtime.Object = (*DaemonSet)(nil)
)

// Deployments returns the shared Deployment informer. Its store holds
// *Deployment, not *appsv1.Deployment: see StripDeployment.
func (f *Informers) Deployments() *Informer {
	c := f.client.AppsV1().Deployments(metav1.NamespaceAll)
	return f.get("deployments", &appsv1.Deployment{}, listWatch(c.List, c.Watch), StripDeployment, nil)
}

// StatefulSets returns the shared StatefulSet informer. Its store holds
// *StatefulSet: see StripStatefulSet.
func (f *Informers) StatefulSets() *Informer {
	c := f.client.AppsV1().StatefulSets(metav1.NamespaceAll)
	return f.get("statefulsets", &appsv1.StatefulSet{}, listWatch(c.List, c.Watch), StripStatefulSet, nil)
}

// DaemonSets returns the shared DaemonSet informer. Its store holds
// *DaemonSet: see StripDaemonSet.
func (f *Informers) DaemonSets() *Informer {
	c := f.client.AppsV1().DaemonSets(metav1.NamespaceAll)
	return f.get("daemonsets", &appsv1.DaemonSet{}, listWatch(c.List, c.Watch), StripDaemonSet, nil)
}
