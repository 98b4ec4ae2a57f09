package kube

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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

// TestStripWorkloads checks that the workload transforms keep the name,
// namespace and resource version, the replica count, the strategy and the
// status counters the collector reads, and drop the rest (the pod template
// above all); that the stored objects are metav1.Objects keyed as the API
// objects were; and that an object already stripped or a tombstone passes
// through.
func TestStripWorkloads(t *testing.T) {
	meta := Meta{Namespace: "shop", Name: "web", ResourceVersion: "42"}
	maxUnavailable, maxSurge := intstr.FromString("10%"), intstr.FromInt32(2)

	dep := &appsv1.Deployment{
		ObjectMeta: fullMeta("shop", "web"),
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](4), Template: template, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 7, Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3, UnavailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
	wantDep := &Deployment{Meta: meta, Replicas: 4, AvailableReplicas: 3, ReadyReplicas: 3, UpdatedReplicas: 2,
		Strategy: appsv1.RollingUpdateDeploymentStrategyType, MaxSurge: &maxSurge, MaxUnavailable: &maxUnavailable}
	// No spec.replicas (only objects that skipped the API server's
	// defaulting): 1, the default; Recreate has no rollingUpdate.
	recreate := &appsv1.Deployment{ObjectMeta: fullMeta("shop", "web"),
		Spec: appsv1.DeploymentSpec{Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	wantRecreate := &Deployment{Meta: meta, Replicas: 1, Strategy: appsv1.RecreateDeploymentStrategyType}

	sts := &appsv1.StatefulSet{
		ObjectMeta: fullMeta("shop", "web"),
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Template: template, ServiceName: "web",
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1), MaxUnavailable: &maxUnavailable}}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 7, Replicas: 3, ReadyReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 1, AvailableReplicas: 2, CurrentRevision: "web-1"},
	}
	wantSts := &StatefulSet{Meta: meta, Replicas: 3, AvailableReplicas: 2, ReadyReplicas: 2, UpdatedReplicas: 1,
		Strategy: appsv1.RollingUpdateStatefulSetStrategyType, MaxUnavailable: &maxUnavailable}

	ds := &appsv1.DaemonSet{
		ObjectMeta: fullMeta("shop", "web"),
		Spec: appsv1.DaemonSetSpec{Template: template,
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge}}},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 7, CurrentNumberScheduled: 12, DesiredNumberScheduled: 12, NumberReady: 11, UpdatedNumberScheduled: 12,
			NumberAvailable: 11, NumberUnavailable: 1, NumberMisscheduled: 1},
	}
	wantDs := &DaemonSet{Meta: meta, DesiredNumberScheduled: 12, NumberAvailable: 11, NumberReady: 11, UpdatedNumberScheduled: 12,
		Strategy: appsv1.RollingUpdateDaemonSetStrategyType, MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge}

	for _, c := range []struct {
		name      string
		transform cache.TransformFunc
		in        any
		want      runtime.Object
	}{
		{"deployment", StripDeployment, dep, wantDep},
		{"recreate deployment", StripDeployment, recreate, wantRecreate},
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
		if key, err := cache.MetaNamespaceKeyFunc(got); err != nil || key != "shop/web" {
			t.Errorf("%s: key of the stripped object = %q, %v", c.name, key, err)
		}
		if again, _ := c.transform(got); again != got {
			t.Errorf("%s: a stripped object was changed: %v", c.name, again)
		}
		tomb := cache.DeletedFinalStateUnknown{Key: "shop/x"}
		if got, _ := c.transform(tomb); got != tomb {
			t.Errorf("%s: a tombstone was changed: %v", c.name, got)
		}
	}
}

// TestWorkloadDeepCopy: the compact workload types are runtime.Objects whose
// DeepCopyObject returns an equal object sharing no pointer with the
// original, and which have no type metadata, as decoded objects have none.
func TestWorkloadDeepCopy(t *testing.T) {
	pct, two := intstr.FromString("25%"), intstr.FromInt32(2)
	for _, c := range []struct {
		obj      runtime.Object
		pointers func(runtime.Object) []*intstr.IntOrString
	}{
		{&Deployment{Meta: Meta{Namespace: "shop", Name: "web", ResourceVersion: "3"}, Replicas: 3, MaxSurge: &pct, MaxUnavailable: &two},
			func(o runtime.Object) []*intstr.IntOrString {
				d := o.(*Deployment)
				return []*intstr.IntOrString{d.MaxSurge, d.MaxUnavailable}
			}},
		{&StatefulSet{Meta: Meta{Namespace: "data", Name: "db"}, Replicas: 3, MaxUnavailable: &pct},
			func(o runtime.Object) []*intstr.IntOrString {
				return []*intstr.IntOrString{o.(*StatefulSet).MaxUnavailable}
			}},
		{&DaemonSet{Meta: Meta{Namespace: "kube-system", Name: "kube-proxy"}, NumberReady: 4, MaxUnavailable: &pct, MaxSurge: &two},
			func(o runtime.Object) []*intstr.IntOrString {
				d := o.(*DaemonSet)
				return []*intstr.IntOrString{d.MaxUnavailable, d.MaxSurge}
			}},
	} {
		cp := c.obj.DeepCopyObject()
		if !reflect.DeepEqual(cp, c.obj) {
			t.Errorf("%T: copy %+v, want %+v", c.obj, cp, c.obj)
		}
		if cp == c.obj {
			t.Errorf("%T: the copy is the original", c.obj)
		}
		for i, p := range c.pointers(cp) {
			if p == c.pointers(c.obj)[i] {
				t.Errorf("%T: the copy shares its IntOrString %d", c.obj, i)
			}
		}
		if gvk := c.obj.GetObjectKind().GroupVersionKind(); !gvk.Empty() {
			t.Errorf("%T: kind %v, want none", c.obj, gvk)
		}
		if _, err := meta.Accessor(c.obj); err != nil {
			t.Errorf("%T: %v", c.obj, err)
		}
	}
	var nilDeployment *Deployment
	if cp := nilDeployment.DeepCopyObject(); cp != nil {
		t.Errorf("copy of a nil *Deployment = %#v, want nil", cp)
	}
}
