package kube

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// ENIConfigResource is the VPC CNI's ENIConfig custom resource
// (crd.k8s.amazonaws.com/v1alpha1, cluster-scoped; aws/amazon-vpc-cni-k8s
// charts/aws-vpc-cni/crds/customresourcedefinition.yaml): with custom
// networking, the subnet and security groups of a node's secondary ENIs.
var ENIConfigResource = schema.GroupVersionResource{Group: "crd.k8s.amazonaws.com", Version: "v1alpha1", Resource: "eniconfigs"}

// ENIConfig is what the ENIConfig informer keeps of an ENIConfig: its name
// (a zone, or the value of the node label ENI_CONFIG_LABEL_DEF names) and
// spec.subnet.
type ENIConfig struct {
	metav1.ObjectMeta
	Subnet string
}

// crdAbsentRelist is how long the ENIConfig informer waits before listing
// again while the ENIConfig CRD is not installed, so that installing it is
// seen without a restart.
var crdAbsentRelist = time.Minute

// ENIConfigs returns the shared ENIConfig informer, listing and watching
// through dyn. Its store holds *ENIConfig. A cluster without the ENIConfig
// CRD (no custom networking) lists as empty instead of failing: the API
// server answers 404 for a resource it does not serve. Other errors, 403
// included, fail the informer as for any resource.
func (f *Informers) ENIConfigs(dyn dynamic.Interface) *Informer {
	c := dyn.Resource(ENIConfigResource)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			l, err := c.List(ctx, o)
			if apierrors.IsNotFound(err) {
				return &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "crd.k8s.amazonaws.com/v1alpha1", "kind": "ENIConfigList"}}, nil
			}
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := c.Watch(ctx, o)
			// A streaming list (sendInitialEvents) gets the 404, so that
			// the reflector falls back to the list above; a plain watch
			// idles until the next relist.
			if apierrors.IsNotFound(err) && (o.SendInitialEvents == nil || !*o.SendInitialEvents) {
				return newIdleWatch(crdAbsentRelist), nil
			}
			return w, err
		},
	}
	return f.get("eniconfigs", &unstructured.Unstructured{}, lw, StripENIConfig, nil)
}

// StripENIConfig turns an ENIConfig into an *ENIConfig.
func StripENIConfig(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	subnet, _, _ := unstructured.NestedString(u.Object, "spec", "subnet")
	return &ENIConfig{
		ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), ResourceVersion: u.GetResourceVersion(), UID: u.GetUID()},
		Subnet:     subnet,
	}, nil
}

// idleWatch is a watch with no events that ends after a while, so that the
// reflector lists again.
type idleWatch struct {
	ch   chan watch.Event
	stop chan struct{}
	once sync.Once
}

func newIdleWatch(d time.Duration) *idleWatch {
	w := &idleWatch{ch: make(chan watch.Event), stop: make(chan struct{})}
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-w.stop:
		}
		close(w.ch)
	}()
	return w
}

func (w *idleWatch) Stop()                          { w.once.Do(func() { close(w.stop) }) }
func (w *idleWatch) ResultChan() <-chan watch.Event { return w.ch }
