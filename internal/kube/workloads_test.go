package kube

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func fullMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: ns, Name: name, UID: "u-1", ResourceVersion: "42", Generation: 7,
		CreationTimestamp: metav1.NewTime(time.Unix(1700000000, 0)),
		Labels:            map[string]string{"app": name},
		Annotations:       map[string]string{"deployment.kubernetes.io/revision": "3"},
		ManagedFields:     []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: "Update"}},
	}
}

var template = corev1.PodTemplateSpec{
	ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
	Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
}

// TestStripEndpointSlice checks what the EndpointSlice transform keeps: the
// Service, the address type and per endpoint the first address and the
// conditions with the API's defaults for nil.
func TestStripEndpointSlice(t *testing.T) {
	in := &discoveryv1.EndpointSlice{
		ObjectMeta:  fullMeta("shop", "web-abcde"),
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.1", "10.0.0.9"}, NodeName: ptr.To("n1"), Zone: ptr.To("a"),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "web-1"}},
			{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}},
			{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(false)}},
			{}, // no address: dropped
		},
		Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}},
	}
	in.Labels[discoveryv1.LabelServiceName] = "web"
	out, err := StripEndpointSlice(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-abcde", ResourceVersion: "42"},
		Service:     "web",
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []Endpoint{
			{Address: "10.0.0.1", Ready: true, Serving: true},
			{Address: "10.0.0.2", Serving: true, Terminating: true},
			{Address: "10.0.0.3"},
		},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("StripEndpointSlice = %+v, want %+v", out, want)
	}
	key, err := cache.MetaNamespaceKeyFunc(out)
	if err != nil || key != "shop/web-abcde" {
		t.Errorf("key of the stripped slice = %q, %v", key, err)
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "shop/x"}
	if got, _ := StripEndpointSlice(tomb); got != tomb {
		t.Errorf("a tombstone was changed: %v", got)
	}
}

// TestStripWorkloads checks that the workload transforms keep the replica
// count, the strategy and the status counters, and drop the rest (the pod
// template above all).
func TestStripWorkloads(t *testing.T) {
	meta := metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "u-1", ResourceVersion: "42", Generation: 7,
		CreationTimestamp: metav1.NewTime(time.Unix(1700000000, 0))}
	maxUnavailable := intstr.FromString("10%")

	dep := &appsv1.Deployment{
		ObjectMeta: fullMeta("shop", "web"),
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4), Template: template, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 7, Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3, UnavailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
	wantDep := &appsv1.Deployment{ObjectMeta: meta,
		Spec:   appsv1.DeploymentSpec{Replicas: ptr.To[int32](4), Strategy: dep.Spec.Strategy},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 7, Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3, UnavailableReplicas: 1}}

	sts := &appsv1.StatefulSet{
		ObjectMeta: fullMeta("shop", "web"),
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Template: template, ServiceName: "web",
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 7, Replicas: 3, ReadyReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 1, AvailableReplicas: 2, CurrentRevision: "web-1"},
	}
	wantSts := &appsv1.StatefulSet{ObjectMeta: meta,
		Spec:   appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), UpdateStrategy: sts.Spec.UpdateStrategy},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 7, Replicas: 3, ReadyReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 1, AvailableReplicas: 2}}

	ds := &appsv1.DaemonSet{
		ObjectMeta: fullMeta("shop", "web"),
		Spec: appsv1.DaemonSetSpec{Template: template,
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &maxUnavailable}}},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 7, CurrentNumberScheduled: 12, DesiredNumberScheduled: 12, NumberReady: 11, UpdatedNumberScheduled: 12,
			NumberAvailable: 11, NumberUnavailable: 1, NumberMisscheduled: 1},
	}
	wantDs := &appsv1.DaemonSet{ObjectMeta: meta,
		Spec: appsv1.DaemonSetSpec{UpdateStrategy: ds.Spec.UpdateStrategy},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 7, CurrentNumberScheduled: 12, DesiredNumberScheduled: 12, NumberReady: 11, UpdatedNumberScheduled: 12,
			NumberAvailable: 11, NumberUnavailable: 1}}

	for _, c := range []struct {
		name      string
		transform cache.TransformFunc
		in, want  any
	}{
		{"deployment", StripDeployment, dep, wantDep},
		{"statefulset", StripStatefulSet, sts, wantSts},
		{"daemonset", StripDaemonSet, ds, wantDs},
	} {
		got, err := c.transform(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v\nwant %+v", c.name, got, c.want)
		}
		tomb := cache.DeletedFinalStateUnknown{Key: "shop/x"}
		if got, _ := c.transform(tomb); got != tomb {
			t.Errorf("%s: a tombstone was changed: %v", c.name, got)
		}
	}
}
