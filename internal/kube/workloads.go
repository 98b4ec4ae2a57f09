package kube

import (
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The workload transforms keep a controller's replica count, its update
// strategy and its status counters, and drop the pod template, selector,
// conditions and everything else: the template alone is most of the object.

// StripDeployment keeps a Deployment's spec.replicas, spec.strategy and
// status counters.
func StripDeployment(obj any) (any, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return obj, nil
	}
	out := &appsv1.Deployment{ObjectMeta: stripMeta(d.ObjectMeta)}
	out.Spec.Replicas = d.Spec.Replicas
	out.Spec.Strategy = d.Spec.Strategy
	out.Status = appsv1.DeploymentStatus{
		ObservedGeneration:  d.Status.ObservedGeneration,
		Replicas:            d.Status.Replicas,
		UpdatedReplicas:     d.Status.UpdatedReplicas,
		ReadyReplicas:       d.Status.ReadyReplicas,
		AvailableReplicas:   d.Status.AvailableReplicas,
		UnavailableReplicas: d.Status.UnavailableReplicas,
	}
	return out, nil
}

// StripStatefulSet keeps a StatefulSet's spec.replicas, spec.updateStrategy
// and status counters.
func StripStatefulSet(obj any) (any, error) {
	s, ok := obj.(*appsv1.StatefulSet)
	if !ok {
		return obj, nil
	}
	out := &appsv1.StatefulSet{ObjectMeta: stripMeta(s.ObjectMeta)}
	out.Spec.Replicas = s.Spec.Replicas
	out.Spec.UpdateStrategy = s.Spec.UpdateStrategy
	out.Status = appsv1.StatefulSetStatus{
		ObservedGeneration: s.Status.ObservedGeneration,
		Replicas:           s.Status.Replicas,
		ReadyReplicas:      s.Status.ReadyReplicas,
		CurrentReplicas:    s.Status.CurrentReplicas,
		UpdatedReplicas:    s.Status.UpdatedReplicas,
		AvailableReplicas:  s.Status.AvailableReplicas,
	}
	return out, nil
}

// StripDaemonSet keeps a DaemonSet's spec.updateStrategy and status counters.
func StripDaemonSet(obj any) (any, error) {
	d, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return obj, nil
	}
	out := &appsv1.DaemonSet{ObjectMeta: stripMeta(d.ObjectMeta)}
	out.Spec.UpdateStrategy = d.Spec.UpdateStrategy
	out.Status = appsv1.DaemonSetStatus{
		ObservedGeneration:     d.Status.ObservedGeneration,
		CurrentNumberScheduled: d.Status.CurrentNumberScheduled,
		DesiredNumberScheduled: d.Status.DesiredNumberScheduled,
		NumberReady:            d.Status.NumberReady,
		UpdatedNumberScheduled: d.Status.UpdatedNumberScheduled,
		NumberAvailable:        d.Status.NumberAvailable,
		NumberUnavailable:      d.Status.NumberUnavailable,
	}
	return out, nil
}

// Deployments returns the shared Deployment informer (objects stripped by
// StripDeployment).
func (f *Informers) Deployments() *Informer {
	c := f.client.AppsV1().Deployments(metav1.NamespaceAll)
	return f.get("deployments", &appsv1.Deployment{}, listWatch(c.List, c.Watch), StripDeployment, nil)
}

// StatefulSets returns the shared StatefulSet informer (objects stripped by
// StripStatefulSet).
func (f *Informers) StatefulSets() *Informer {
	c := f.client.AppsV1().StatefulSets(metav1.NamespaceAll)
	return f.get("statefulsets", &appsv1.StatefulSet{}, listWatch(c.List, c.Watch), StripStatefulSet, nil)
}

// DaemonSets returns the shared DaemonSet informer (objects stripped by
// StripDaemonSet).
func (f *Informers) DaemonSets() *Informer {
	c := f.client.AppsV1().DaemonSets(metav1.NamespaceAll)
	return f.get("daemonsets", &appsv1.DaemonSet{}, listWatch(c.List, c.Watch), StripDaemonSet, nil)
}
