package kube

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// AWSNodeNamespace and AWSNodeName name the VPC CNI's DaemonSet, as the
// VPC CNI's manifests and EKS's add-on install it; AWSNodeContainer is its
// ipamd container, whose environment holds the CNI's settings.
const (
	AWSNodeNamespace = "kube-system"
	AWSNodeName      = "aws-node"
	AWSNodeContainer = "aws-node"
)

// AWSNode returns the shared informer of the aws-node DaemonSet alone: its
// list and watch carry the field selector metadata.name=aws-node, so it
// never holds another DaemonSet (the workloads collector has its own
// informer of every DaemonSet). Its store holds at most one
// *appsv1.DaemonSet, stripped by StripAWSNode.
func (f *Informers) AWSNode() *Informer {
	c := f.client.AppsV1().DaemonSets(AWSNodeNamespace)
	sel := fields.OneTermEqualSelector("metadata.name", AWSNodeName).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return c.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return c.Watch(ctx, o)
		},
	}
	return f.get("aws-node", &appsv1.DaemonSet{}, lw, StripAWSNode, nil)
}

// StripAWSNode keeps of the aws-node DaemonSet its identity, the
// environment of its aws-node container (the VPC CNI's settings: values
// and whether a value comes from elsewhere) and the status counts of the
// nodes it should run on and runs on.
func StripAWSNode(obj any) (any, error) {
	d, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return obj, nil
	}
	out := &appsv1.DaemonSet{ObjectMeta: stripMeta(d.ObjectMeta)}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != AWSNodeContainer {
			continue
		}
		env := make([]corev1.EnvVar, 0, len(c.Env))
		for _, e := range c.Env {
			kept := corev1.EnvVar{Name: e.Name, Value: e.Value}
			if e.ValueFrom != nil {
				kept.ValueFrom = &corev1.EnvVarSource{}
			}
			env = append(env, kept)
		}
		out.Spec.Template.Spec.Containers = []corev1.Container{{Name: c.Name, Env: env}}
	}
	out.Status = appsv1.DaemonSetStatus{
		DesiredNumberScheduled: d.Status.DesiredNumberScheduled,
		CurrentNumberScheduled: d.Status.CurrentNumberScheduled,
		NumberReady:            d.Status.NumberReady,
	}
	return out, nil
}
