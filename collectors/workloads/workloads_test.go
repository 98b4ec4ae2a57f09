package workloads

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// start runs the collector's informers on a fake clientset and waits until
// it has rendered their objects.
func start(t *testing.T, client *fake.Clientset) *Collector {
	t.Helper()
	return startWith(t, client, Options{})
}

func startWith(t *testing.T, client *fake.Clientset, opts Options) *Collector {
	t.Helper()
	inf := kube.NewInformers(client, kube.Options{}, slog.New(slog.DiscardHandler))
	c := New(inf.EndpointSlices(), inf.Deployments(), inf.StatefulSets(), inf.DaemonSets(), opts)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	inf.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := inf.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the handlers to render the initial objects", c.synced)
	return c
}

// synced tells whether the collector's handlers have rendered every object
// of the informers' initial lists.
func (c *Collector) synced() bool {
	for _, w := range c.watched {
		if !w.informer.HasSynced() {
			return false
		}
	}
	return true
}

func compare(t *testing.T, c *Collector, want string, names ...string) {
	t.Helper()
	var updateErr error
	pc := collectors.AsPrometheus(c, func(err error) { updateErr = err })
	if err := testutil.CollectAndCompare(pc, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if updateErr != nil {
		t.Errorf("Update: %v", updateErr)
	}
}

type ep struct {
	addr                        string
	ready, serving, terminating *bool
}

func slice(ns, name, service string, typ discoveryv1.AddressType, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
		AddressType: typ,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
	}
	if service != "" {
		s.Labels[discoveryv1.LabelServiceName] = service
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.addr},
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.terminating},
			NodeName:   ptr.To("node-a"),
		})
	}
	return s
}

var yes, no = ptr.To(true), ptr.To(false)

const servicesHeader = `
# HELP upgradeguard_service_endpoints Endpoints of the Service in its EndpointSlices, by whether they are ready to receive traffic (ready="true") or not (ready="false"); each address counted once.
# TYPE upgradeguard_service_endpoints gauge
`

const servingTerminatingHeader = `
# HELP upgradeguard_service_serving_terminating_endpoints Not-ready endpoints of the Service that are terminating but still serving: kube-proxy sends traffic to them only while no endpoint is ready.
# TYPE upgradeguard_service_serving_terminating_endpoints gauge
`

// TestServiceEndpoints covers the endpoint conditions as the EndpointSlice
// controller sets them (ready, serving, terminating; nil meaning ready,
// serving, not terminating), an address in two slices at once, dual-stack
// slices, an empty slice and slices of no Service.
func TestServiceEndpoints(t *testing.T) {
	c := start(t, fake.NewClientset(
		// web: .1 ready (nil conditions) in slice a and, already not
		// ready, again in slice b while it moves: counted once, ready. .2
		// not ready and not serving (a pod failing its readiness probe).
		slice("shop", "web-a", "web", discoveryv1.AddressTypeIPv4,
			ep{addr: "10.0.0.1"}, ep{addr: "10.0.0.2", ready: no, serving: no, terminating: no}),
		slice("shop", "web-b", "web", discoveryv1.AddressTypeIPv4,
			ep{addr: "10.0.0.3", ready: yes, serving: yes, terminating: no}, ep{addr: "10.0.0.1", ready: no, serving: no}),
		// draining: every pod terminating, one still serving (kube-proxy's
		// fallback), one no longer.
		slice("shop", "draining-x", "draining", discoveryv1.AddressTypeIPv4,
			ep{addr: "10.0.1.1", ready: no, serving: yes, terminating: yes},
			ep{addr: "10.0.1.2", ready: no, serving: no, terminating: yes}),
		// empty: the controller's placeholder slice of a Service with no pods.
		slice("shop", "empty-x", "empty", discoveryv1.AddressTypeIPv4),
		// dual: the same two pods in an IPv4 and an IPv6 slice.
		slice("shop", "dual-4", "dual", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.2.1"}, ep{addr: "10.0.2.2"}),
		slice("shop", "dual-6", "dual", discoveryv1.AddressTypeIPv6, ep{addr: "fd00::1"}, ep{addr: "fd00::2", ready: no}),
		// The same Service name in another namespace is another Service.
		slice("blog", "web-a", "web", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.3.1", ready: no, serving: no}),
		// A slice of no Service.
		slice("shop", "custom", "", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.4.1"}),
	))
	compare(t, c, servicesHeader+`
upgradeguard_service_endpoints{namespace="blog",ready="false",service="web"} 1
upgradeguard_service_endpoints{namespace="blog",ready="true",service="web"} 0
upgradeguard_service_endpoints{namespace="shop",ready="false",service="draining"} 2
upgradeguard_service_endpoints{namespace="shop",ready="true",service="draining"} 0
upgradeguard_service_endpoints{namespace="shop",ready="false",service="dual"} 0
upgradeguard_service_endpoints{namespace="shop",ready="true",service="dual"} 2
upgradeguard_service_endpoints{namespace="shop",ready="false",service="empty"} 0
upgradeguard_service_endpoints{namespace="shop",ready="true",service="empty"} 0
upgradeguard_service_endpoints{namespace="shop",ready="false",service="web"} 1
upgradeguard_service_endpoints{namespace="shop",ready="true",service="web"} 2
`+servingTerminatingHeader+`
upgradeguard_service_serving_terminating_endpoints{namespace="blog",service="web"} 0
upgradeguard_service_serving_terminating_endpoints{namespace="shop",service="draining"} 1
upgradeguard_service_serving_terminating_endpoints{namespace="shop",service="dual"} 0
upgradeguard_service_serving_terminating_endpoints{namespace="shop",service="empty"} 0
upgradeguard_service_serving_terminating_endpoints{namespace="shop",service="web"} 0
`, "upgradeguard_service_endpoints", "upgradeguard_service_serving_terminating_endpoints")
}

// TestServiceLosesItsEndpoints follows a Service through a node drain: its
// only pod's endpoint turns terminating, then goes; the series stays, at 0.
func TestServiceLosesItsEndpoints(t *testing.T) {
	client := fake.NewClientset(slice("shop", "api-x", "api", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}))
	c := start(t, client)
	compare(t, c, servicesHeader+`
upgradeguard_service_endpoints{namespace="shop",ready="false",service="api"} 0
upgradeguard_service_endpoints{namespace="shop",ready="true",service="api"} 1
`, "upgradeguard_service_endpoints")

	ctx := context.Background()
	steps := []struct {
		slice *discoveryv1.EndpointSlice
		want  string
	}{
		{slice("shop", "api-x", "api", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1", ready: no, serving: yes, terminating: yes}), `
upgradeguard_service_endpoints{namespace="shop",ready="false",service="api"} 1
upgradeguard_service_endpoints{namespace="shop",ready="true",service="api"} 0
`},
		{slice("shop", "api-x", "api", discoveryv1.AddressTypeIPv4), `
upgradeguard_service_endpoints{namespace="shop",ready="false",service="api"} 0
upgradeguard_service_endpoints{namespace="shop",ready="true",service="api"} 0
`},
	}
	for _, s := range steps {
		if _, err := client.DiscoveryV1().EndpointSlices("shop").Update(ctx, s.slice, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the informer to see the update", func() bool {
			pc := collectors.AsPrometheus(c, nil)
			return testutil.CollectAndCompare(pc, strings.NewReader(servicesHeader+s.want), "upgradeguard_service_endpoints") == nil
		})
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func intOrStr(s string) *intstr.IntOrString {
	v := intstr.Parse(s)
	return &v
}

// TestDeployments: a Deployment mid-rollout, and the strategy's
// maxUnavailable resolved as the deployment controller does.
func TestDeployments(t *testing.T) {
	dep := func(name string, replicas int32, strategy appsv1.DeploymentStrategy, status appsv1.DeploymentStatus) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: strategy},
			Status:     status,
		}
	}
	rolling := func(surge, unavailable string) appsv1.DeploymentStrategy {
		s := appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}}
		if surge != "" {
			s.RollingUpdate.MaxSurge = intOrStr(surge)
		}
		if unavailable != "" {
			s.RollingUpdate.MaxUnavailable = intOrStr(unavailable)
		}
		return s
	}
	c := start(t, fake.NewClientset(
		// Mid-rollout: 2 of 4 on the new template, one old pod gone, the
		// surge pod not ready yet. Defaults 25%/25%: 1 unavailable allowed.
		dep("web", 4, appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
			appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3, UnavailableReplicas: 1}),
		dep("half", 5, rolling("0", "50%"), appsv1.DeploymentStatus{AvailableReplicas: 5, ReadyReplicas: 5, UpdatedReplicas: 5}),
		// 10% of 4 rounds down to 0 and maxSurge is 0: the controller uses 1.
		dep("fencepost", 4, rolling("0", "10%"), appsv1.DeploymentStatus{}),
		dep("big", 3, rolling("1", "5"), appsv1.DeploymentStatus{}),
		dep("recreate", 3, appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, appsv1.DeploymentStatus{}),
		dep("zero", 0, rolling("", ""), appsv1.DeploymentStatus{}),
	))
	compare(t, c, `
# HELP upgradeguard_deployment_spec_replicas Replicas the Deployment wants (spec.replicas).
# TYPE upgradeguard_deployment_spec_replicas gauge
upgradeguard_deployment_spec_replicas{deployment="big",namespace="shop"} 3
upgradeguard_deployment_spec_replicas{deployment="fencepost",namespace="shop"} 4
upgradeguard_deployment_spec_replicas{deployment="half",namespace="shop"} 5
upgradeguard_deployment_spec_replicas{deployment="recreate",namespace="shop"} 3
upgradeguard_deployment_spec_replicas{deployment="web",namespace="shop"} 4
upgradeguard_deployment_spec_replicas{deployment="zero",namespace="shop"} 0
# HELP upgradeguard_deployment_status_replicas_available Replicas of the Deployment available (ready for at least minReadySeconds), from its status.
# TYPE upgradeguard_deployment_status_replicas_available gauge
upgradeguard_deployment_status_replicas_available{deployment="big",namespace="shop"} 0
upgradeguard_deployment_status_replicas_available{deployment="fencepost",namespace="shop"} 0
upgradeguard_deployment_status_replicas_available{deployment="half",namespace="shop"} 5
upgradeguard_deployment_status_replicas_available{deployment="recreate",namespace="shop"} 0
upgradeguard_deployment_status_replicas_available{deployment="web",namespace="shop"} 3
upgradeguard_deployment_status_replicas_available{deployment="zero",namespace="shop"} 0
# HELP upgradeguard_deployment_status_replicas_updated Replicas of the Deployment running its current pod template, from its status.
# TYPE upgradeguard_deployment_status_replicas_updated gauge
upgradeguard_deployment_status_replicas_updated{deployment="big",namespace="shop"} 0
upgradeguard_deployment_status_replicas_updated{deployment="fencepost",namespace="shop"} 0
upgradeguard_deployment_status_replicas_updated{deployment="half",namespace="shop"} 5
upgradeguard_deployment_status_replicas_updated{deployment="recreate",namespace="shop"} 0
upgradeguard_deployment_status_replicas_updated{deployment="web",namespace="shop"} 2
upgradeguard_deployment_status_replicas_updated{deployment="zero",namespace="shop"} 0
# HELP upgradeguard_deployment_strategy_max_unavailable Replicas the Deployment's strategy lets be unavailable, as the deployment controller resolves it: rollingUpdate maxUnavailable of spec.replicas rounded down (1 when it and maxSurge both resolve to 0); 0 for Recreate.
# TYPE upgradeguard_deployment_strategy_max_unavailable gauge
upgradeguard_deployment_strategy_max_unavailable{deployment="big",namespace="shop"} 3
upgradeguard_deployment_strategy_max_unavailable{deployment="fencepost",namespace="shop"} 1
upgradeguard_deployment_strategy_max_unavailable{deployment="half",namespace="shop"} 2
upgradeguard_deployment_strategy_max_unavailable{deployment="recreate",namespace="shop"} 0
upgradeguard_deployment_strategy_max_unavailable{deployment="web",namespace="shop"} 1
upgradeguard_deployment_strategy_max_unavailable{deployment="zero",namespace="shop"} 0
`, "upgradeguard_deployment_spec_replicas", "upgradeguard_deployment_status_replicas_available",
		"upgradeguard_deployment_status_replicas_updated", "upgradeguard_deployment_strategy_max_unavailable")
	compare(t, c, `
# HELP upgradeguard_deployment_status_replicas_ready Replicas of the Deployment whose pods are Ready, from its status.
# TYPE upgradeguard_deployment_status_replicas_ready gauge
upgradeguard_deployment_status_replicas_ready{deployment="big",namespace="shop"} 0
upgradeguard_deployment_status_replicas_ready{deployment="fencepost",namespace="shop"} 0
upgradeguard_deployment_status_replicas_ready{deployment="half",namespace="shop"} 5
upgradeguard_deployment_status_replicas_ready{deployment="recreate",namespace="shop"} 0
upgradeguard_deployment_status_replicas_ready{deployment="web",namespace="shop"} 3
upgradeguard_deployment_status_replicas_ready{deployment="zero",namespace="shop"} 0
`, "upgradeguard_deployment_status_replicas_ready")
}

func TestStatefulSets(t *testing.T) {
	sts := func(name string, replicas int32, strategy appsv1.StatefulSetUpdateStrategy, status appsv1.StatefulSetStatus) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: "data", Name: name},
			Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(replicas), UpdateStrategy: strategy},
			Status:     status,
		}
	}
	rolling := func(unavailable string) appsv1.StatefulSetUpdateStrategy {
		return appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
			RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{MaxUnavailable: intOrStr(unavailable)}}
	}
	c := start(t, fake.NewClientset(
		// Mid-update: the highest ordinal replaced and not ready yet.
		sts("db", 3, appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 1, CurrentReplicas: 2}),
		sts("half", 5, rolling("50%"), appsv1.StatefulSetStatus{}),
		sts("small", 3, rolling("10%"), appsv1.StatefulSetStatus{}),
		sts("manual", 3, appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}, appsv1.StatefulSetStatus{}),
	))
	compare(t, c, `
# HELP upgradeguard_statefulset_spec_replicas Replicas the StatefulSet wants (spec.replicas).
# TYPE upgradeguard_statefulset_spec_replicas gauge
upgradeguard_statefulset_spec_replicas{namespace="data",statefulset="db"} 3
upgradeguard_statefulset_spec_replicas{namespace="data",statefulset="half"} 5
upgradeguard_statefulset_spec_replicas{namespace="data",statefulset="manual"} 3
upgradeguard_statefulset_spec_replicas{namespace="data",statefulset="small"} 3
# HELP upgradeguard_statefulset_status_replicas_available Replicas of the StatefulSet available (ready for at least minReadySeconds), from its status.
# TYPE upgradeguard_statefulset_status_replicas_available gauge
upgradeguard_statefulset_status_replicas_available{namespace="data",statefulset="db"} 2
upgradeguard_statefulset_status_replicas_available{namespace="data",statefulset="half"} 0
upgradeguard_statefulset_status_replicas_available{namespace="data",statefulset="manual"} 0
upgradeguard_statefulset_status_replicas_available{namespace="data",statefulset="small"} 0
# HELP upgradeguard_statefulset_status_replicas_ready Replicas of the StatefulSet whose pods are Ready, from its status.
# TYPE upgradeguard_statefulset_status_replicas_ready gauge
upgradeguard_statefulset_status_replicas_ready{namespace="data",statefulset="db"} 2
upgradeguard_statefulset_status_replicas_ready{namespace="data",statefulset="half"} 0
upgradeguard_statefulset_status_replicas_ready{namespace="data",statefulset="manual"} 0
upgradeguard_statefulset_status_replicas_ready{namespace="data",statefulset="small"} 0
# HELP upgradeguard_statefulset_status_replicas_updated Replicas of the StatefulSet at its update revision, from its status.
# TYPE upgradeguard_statefulset_status_replicas_updated gauge
upgradeguard_statefulset_status_replicas_updated{namespace="data",statefulset="db"} 1
upgradeguard_statefulset_status_replicas_updated{namespace="data",statefulset="half"} 0
upgradeguard_statefulset_status_replicas_updated{namespace="data",statefulset="manual"} 0
upgradeguard_statefulset_status_replicas_updated{namespace="data",statefulset="small"} 0
# HELP upgradeguard_statefulset_strategy_max_unavailable Replicas the StatefulSet's update strategy lets be unavailable, as the statefulset controller resolves it: rollingUpdate maxUnavailable (default 1) of spec.replicas rounded down, at least 1; 0 for OnDelete.
# TYPE upgradeguard_statefulset_strategy_max_unavailable gauge
upgradeguard_statefulset_strategy_max_unavailable{namespace="data",statefulset="db"} 1
upgradeguard_statefulset_strategy_max_unavailable{namespace="data",statefulset="half"} 2
upgradeguard_statefulset_strategy_max_unavailable{namespace="data",statefulset="manual"} 0
upgradeguard_statefulset_strategy_max_unavailable{namespace="data",statefulset="small"} 1
`)
}

func TestDaemonSets(t *testing.T) {
	ds := func(name string, strategy appsv1.DaemonSetUpdateStrategy, status appsv1.DaemonSetStatus) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: name},
			Spec:       appsv1.DaemonSetSpec{UpdateStrategy: strategy},
			Status:     status,
		}
	}
	rolling := func(unavailable, surge string) appsv1.DaemonSetUpdateStrategy {
		s := appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{}}
		if unavailable != "" {
			s.RollingUpdate.MaxUnavailable = intOrStr(unavailable)
		}
		if surge != "" {
			s.RollingUpdate.MaxSurge = intOrStr(surge)
		}
		return s
	}
	c := start(t, fake.NewClientset(
		// A node surging in: its pod scheduled, not ready yet.
		ds("aws-node", rolling("1", ""), appsv1.DaemonSetStatus{DesiredNumberScheduled: 13, NumberReady: 12, NumberAvailable: 12, UpdatedNumberScheduled: 13, NumberUnavailable: 1}),
		// 10% of 12 rounds up to 2.
		ds("kube-proxy", rolling("10%", ""), appsv1.DaemonSetStatus{DesiredNumberScheduled: 12}),
		ds("surging", rolling("0", "1"), appsv1.DaemonSetStatus{DesiredNumberScheduled: 12}),
		ds("manual", appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}, appsv1.DaemonSetStatus{DesiredNumberScheduled: 12}),
	))
	compare(t, c, `
# HELP upgradeguard_daemonset_status_desired_number_scheduled Nodes that should run the DaemonSet's pod, from its status.
# TYPE upgradeguard_daemonset_status_desired_number_scheduled gauge
upgradeguard_daemonset_status_desired_number_scheduled{daemonset="aws-node",namespace="kube-system"} 13
upgradeguard_daemonset_status_desired_number_scheduled{daemonset="kube-proxy",namespace="kube-system"} 12
upgradeguard_daemonset_status_desired_number_scheduled{daemonset="manual",namespace="kube-system"} 12
upgradeguard_daemonset_status_desired_number_scheduled{daemonset="surging",namespace="kube-system"} 12
# HELP upgradeguard_daemonset_status_number_available Nodes running an available pod of the DaemonSet (ready for at least minReadySeconds), from its status.
# TYPE upgradeguard_daemonset_status_number_available gauge
upgradeguard_daemonset_status_number_available{daemonset="aws-node",namespace="kube-system"} 12
upgradeguard_daemonset_status_number_available{daemonset="kube-proxy",namespace="kube-system"} 0
upgradeguard_daemonset_status_number_available{daemonset="manual",namespace="kube-system"} 0
upgradeguard_daemonset_status_number_available{daemonset="surging",namespace="kube-system"} 0
# HELP upgradeguard_daemonset_status_number_ready Nodes running a Ready pod of the DaemonSet, from its status.
# TYPE upgradeguard_daemonset_status_number_ready gauge
upgradeguard_daemonset_status_number_ready{daemonset="aws-node",namespace="kube-system"} 12
upgradeguard_daemonset_status_number_ready{daemonset="kube-proxy",namespace="kube-system"} 0
upgradeguard_daemonset_status_number_ready{daemonset="manual",namespace="kube-system"} 0
upgradeguard_daemonset_status_number_ready{daemonset="surging",namespace="kube-system"} 0
# HELP upgradeguard_daemonset_status_updated_number_scheduled Nodes running the DaemonSet's current pod template, from its status.
# TYPE upgradeguard_daemonset_status_updated_number_scheduled gauge
upgradeguard_daemonset_status_updated_number_scheduled{daemonset="aws-node",namespace="kube-system"} 13
upgradeguard_daemonset_status_updated_number_scheduled{daemonset="kube-proxy",namespace="kube-system"} 0
upgradeguard_daemonset_status_updated_number_scheduled{daemonset="manual",namespace="kube-system"} 0
upgradeguard_daemonset_status_updated_number_scheduled{daemonset="surging",namespace="kube-system"} 0
# HELP upgradeguard_daemonset_strategy_max_unavailable Pods the DaemonSet's update strategy lets be unavailable, as the daemonset controller resolves it: rollingUpdate maxUnavailable of the desired number rounded up (1 when it and maxSurge are both 0); 0 for OnDelete.
# TYPE upgradeguard_daemonset_strategy_max_unavailable gauge
upgradeguard_daemonset_strategy_max_unavailable{daemonset="aws-node",namespace="kube-system"} 1
upgradeguard_daemonset_strategy_max_unavailable{daemonset="kube-proxy",namespace="kube-system"} 2
upgradeguard_daemonset_strategy_max_unavailable{daemonset="manual",namespace="kube-system"} 0
upgradeguard_daemonset_strategy_max_unavailable{daemonset="surging",namespace="kube-system"} 0
`)
}

// TestUnhealthyInformer: while the Deployment informer cannot list, a
// scrape still sends the Services' endpoints and reports the failure, so the
// collector's success is 0.
func TestUnhealthyInformer(t *testing.T) {
	client := fake.NewClientset(
		slice("shop", "api-x", "api", discoveryv1.AddressTypeIPv4, ep{addr: "10.0.0.1"}),
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api"}},
	)
	refused := errors.New("connection refused")
	client.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, refused })
	client.PrependWatchReactor("deployments", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, refused })
	inf := kube.NewInformers(client, kube.Options{}, slog.New(slog.DiscardHandler))
	slices, deployments := inf.EndpointSlices(), inf.Deployments()
	c := New(slices, deployments, inf.StatefulSets(), inf.DaemonSets(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf.Start(ctx)
	eventually(t, "the other informers to sync and be rendered", func() bool { return c.watched[0].informer.HasSynced() })

	var updateErr error
	pc := collectors.AsPrometheus(c, func(err error) { updateErr = err })
	if err := testutil.CollectAndCompare(pc, strings.NewReader(servicesHeader+`
upgradeguard_service_endpoints{namespace="shop",ready="false",service="api"} 0
upgradeguard_service_endpoints{namespace="shop",ready="true",service="api"} 1
`), "upgradeguard_service_endpoints"); err != nil {
		t.Error(err)
	}
	if updateErr == nil || !strings.Contains(updateErr.Error(), "deployments informer") {
		t.Errorf("Update returned %v, want the deployments informer's error", updateErr)
	}
}
