package kube

import (
	"context"
	"log/slog"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func dynClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{ENIConfigResource: "ENIConfigList"}, objs...)
}

func syncWithin(t *testing.T, f *Informers, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, d)
	defer scancel()
	return f.WaitForSync(sctx)
}

func TestENIConfigsStrippedToSubnet(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfig",
		"metadata": map[string]any{"name": "eu-west-1a", "annotations": map[string]any{"big": "x"}},
		"spec":     map[string]any{"subnet": "subnet-1", "securityGroups": []any{"sg-1"}},
	}}
	f := NewInformers(fake.NewClientset(), Options{}, slog.New(slog.DiscardHandler))
	inf := f.ENIConfigs(dynClient(u))
	if err := syncWithin(t, f, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	objs := inf.GetStore().List()
	if len(objs) != 1 {
		t.Fatalf("store %v", objs)
	}
	e, ok := objs[0].(*ENIConfig)
	if !ok || e.Name != "eu-west-1a" || e.Subnet != "subnet-1" || e.Annotations != nil {
		t.Errorf("stored %#v", objs[0])
	}
	if err := inf.Healthy(); err != nil {
		t.Error(err)
	}
}

// Without the ENIConfig CRD the API server answers 404: the informer syncs
// empty and stays healthy. A 403 (no RBAC) fails it.
func TestENIConfigsWithoutTheCRD(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		healthy bool
	}{
		{"404", apierrors.NewNotFound(schema.GroupResource{Group: "crd.k8s.amazonaws.com", Resource: "eniconfigs"}, ""), true},
		{"403", apierrors.NewForbidden(schema.GroupResource{Group: "crd.k8s.amazonaws.com", Resource: "eniconfigs"}, "", nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dyn := dynClient()
			dyn.PrependReactor("list", "eniconfigs", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err })
			dyn.PrependWatchReactor("eniconfigs", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, tc.err })
			f := NewInformers(fake.NewClientset(), Options{}, slog.New(slog.DiscardHandler))
			inf := f.ENIConfigs(dyn)
			err := syncWithin(t, f, 2*time.Second)
			if tc.healthy {
				if err != nil || inf.Healthy() != nil || len(inf.GetStore().List()) != 0 {
					t.Errorf("sync %v, healthy %v, store %v", err, inf.Healthy(), inf.GetStore().List())
				}
			} else if err == nil {
				t.Error("synced although the list is forbidden")
			}
		})
	}
}

// The aws-node informer lists and watches aws-node alone, by field
// selector, and keeps the aws-node container's environment and the status.
func TestAWSNodeInformer(t *testing.T) {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: AWSNodeName, Namespace: AWSNodeNamespace, Labels: map[string]string{"k8s-app": "aws-node"}},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "aws-eks-nodeagent", Env: []corev1.EnvVar{{Name: "OTHER", Value: "x"}}},
			{Name: AWSNodeContainer, Image: "cni:1", Env: []corev1.EnvVar{{Name: "WARM_IP_TARGET", Value: "5"},
				{Name: "MY_NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}}},
		}}}},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 4, NumberReady: 3},
	}
	client := fake.NewClientset(ds)
	var selectors []string
	client.PrependReactor("list", "daemonsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		selectors = append(selectors, a.(k8stesting.ListAction).GetListRestrictions().Fields.String())
		return false, nil, nil
	})
	f := NewInformers(client, Options{}, slog.New(slog.DiscardHandler))
	inf := f.AWSNode()
	if err := syncWithin(t, f, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(selectors) == 0 || selectors[0] != "metadata.name=aws-node" {
		t.Errorf("list field selectors %q", selectors)
	}
	objs := inf.GetStore().List()
	if len(objs) != 1 {
		t.Fatalf("store %v", objs)
	}
	got := objs[0].(*appsv1.DaemonSet)
	cs := got.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != AWSNodeContainer || cs[0].Image != "" || len(cs[0].Env) != 2 ||
		cs[0].Env[0].Value != "5" || cs[0].Env[1].ValueFrom == nil || cs[0].Env[1].ValueFrom.FieldRef != nil ||
		got.Status.DesiredNumberScheduled != 4 || got.Labels != nil {
		t.Errorf("stored %#v", got)
	}
}
