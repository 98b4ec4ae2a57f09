// Package kubetest builds synthetic clusters of stripped objects in the
// informers' stores, for benchmarks at production scale without an API server.
package kubetest

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// Scale describes a synthetic cluster. Pod i lives on node i/PodsPerNode, in
// namespace i%Namespaces and app (i/Namespaces)%AppsPerNamespace; each app has
// one PDB, every tenth of them with maxUnavailable 0. On every node one pod
// belongs to a DaemonSet, one has an emptyDir and one is not ready.
type Scale struct {
	Nodes, PodsPerNode, Namespaces, AppsPerNamespace int
}

// Production is the scale the exporter is built for: 5,000 nodes, 150,000
// pods and 3,000 PDBs.
var Production = Scale{Nodes: 5000, PodsPerNode: 30, Namespaces: 300, AppsPerNamespace: 10}

// Fill adds the cluster to the stores of the informers that f has been asked
// for so far (nodes, node Leases, pods, PDBs), through their transforms. The
// informers never run, so they stay unsynced.
func (s Scale) Fill(f *kube.Informers, nodeLabels []string) error {
	add := func(inf *kube.Informer, strip cache.TransformFunc, obj any) error {
		stripped, err := strip(obj)
		if err != nil {
			return err
		}
		return inf.GetIndexer().Add(stripped)
	}
	now := time.Now()
	stripNode := kube.StripNode(nodeLabels) // one transform, as an informer has
	for n := range s.Nodes {
		if err := add(f.Nodes(), stripNode, node(n, now)); err != nil {
			return err
		}
		if err := add(f.NodeLeases(), kube.StripLease, lease(n, now)); err != nil {
			return err
		}
	}
	for ns := range s.Namespaces {
		for a := range s.AppsPerNamespace {
			if err := add(f.PodDisruptionBudgets(), kube.StripPDB, benchPDB(ns, a)); err != nil {
				return err
			}
		}
	}
	for i := range s.Nodes * s.PodsPerNode {
		if err := add(f.Pods(), kube.StripPod, s.pod(i)); err != nil {
			return err
		}
	}
	return nil
}

func nodeName(n int) string { return fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", n/250, n%250) }

func node(n int, now time.Time) *corev1.Node {
	zone := []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}[n%3]
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: nodeName(n), ResourceVersion: "1", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour)),
			Labels: map[string]string{
				corev1.LabelTopologyZone:       zone,
				corev1.LabelInstanceTypeStable: "m5.xlarge",
				"kops.k8s.io/instancegroup":    fmt.Sprintf("nodes-%d", n%4),
				corev1.LabelHostname:           nodeName(n),
			},
		},
		Spec: corev1.NodeSpec{ProviderID: fmt.Sprintf("aws:///%s/i-%017x", zone, n)},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
		},
	}
}

func lease(n int, now time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName(n), Namespace: kube.NodeLeaseNamespace, ResourceVersion: "1"},
		Spec: coordinationv1.LeaseSpec{
			RenewTime:            &metav1.MicroTime{Time: now.Add(-time.Duration(n%10) * time.Second)},
			LeaseDurationSeconds: ptr.To[int32](40),
		},
	}
}

func benchPDB(ns, a int) *policyv1.PodDisruptionBudget {
	namespace, name := fmt.Sprintf("team-%03d", ns), fmt.Sprintf("app-%d", a)
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{
		"app.kubernetes.io/name":     name,
		"app.kubernetes.io/instance": name + "-" + namespace,
	}}
	if a%5 == 0 {
		sel = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app.kubernetes.io/name", Operator: metav1.LabelSelectorOpIn, Values: []string{name}},
			{Key: "app.kubernetes.io/component", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"migration"}},
		}}
	}
	p := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Generation: 1, ResourceVersion: "1",
			UID: types.UID(fmt.Sprintf("pdb-%d-%d", ns, a))},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: sel, MaxUnavailable: ptr.To(intstr.FromInt32(1))},
		Status: policyv1.PodDisruptionBudgetStatus{
			ObservedGeneration: 1, DisruptionsAllowed: 1, ExpectedPods: 50, CurrentHealthy: 50, DesiredHealthy: 49,
		},
	}
	if a == 9 {
		p.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(0))
		p.Status.DisruptionsAllowed, p.Status.DesiredHealthy = 0, 50
	}
	return p
}

func (s Scale) pod(i int) *corev1.Pod {
	n, ns, a := i/s.PodsPerNode, i%s.Namespaces, (i/s.Namespaces)%s.AppsPerNamespace
	namespace, name := fmt.Sprintf("team-%03d", ns), fmt.Sprintf("app-%d", a)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace, Name: fmt.Sprintf("%s-7d9f8c6b5-%05d", name, i), UID: types.UID(fmt.Sprintf("pod-%d", i)),
			ResourceVersion: "1",
			Labels: map[string]string{
				"app.kubernetes.io/name":      name,
				"app.kubernetes.io/instance":  name + "-" + namespace,
				"app.kubernetes.io/component": "server",
				"app.kubernetes.io/part-of":   namespace,
				"pod-template-hash":           "7d9f8c6b5",
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-7d9f8c6b5", UID: types.UID(fmt.Sprintf("rs-%d-%d", ns, a)), Controller: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{NodeName: nodeName(n)},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
	switch i % s.PodsPerNode {
	case 0: // one DaemonSet pod per node
		p.OwnerReferences[0].Kind = "DaemonSet"
	case 1:
		p.Spec.Volumes = []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	case 2:
		p.Status.Conditions[0].Status = corev1.ConditionFalse
	}
	return p
}

// FillWorkloads adds, through their transforms, what the workloads
// collector reads: per app a Deployment (its pod template included, as the
// API server sends it), a Service whose EndpointSlices list the app's pods
// (up to 100 endpoints a slice, the EndpointSlice controller's default), and
// per namespace one StatefulSet; plus five DaemonSets in kube-system.
func (s Scale) FillWorkloads(f *kube.Informers) error {
	add := func(inf *kube.Informer, strip cache.TransformFunc, obj any) error {
		stripped, err := strip(obj)
		if err != nil {
			return err
		}
		return inf.GetIndexer().Add(stripped)
	}
	// The pods of each app, as Fill creates them.
	type appKey struct{ ns, a int }
	pods := map[appKey][]int{}
	for i := range s.Nodes * s.PodsPerNode {
		k := appKey{i % s.Namespaces, (i / s.Namespaces) % s.AppsPerNamespace}
		pods[k] = append(pods[k], i)
	}
	for ns := range s.Namespaces {
		namespace := fmt.Sprintf("team-%03d", ns)
		for a := range s.AppsPerNamespace {
			name := fmt.Sprintf("app-%d", a)
			members := pods[appKey{ns, a}]
			if err := add(f.Deployments(), kube.StripDeployment, Deployment(namespace, name, int32(len(members)))); err != nil {
				return err
			}
			for start := 0; start < len(members); start += 100 {
				sl := &discoveryv1.EndpointSlice{
					ObjectMeta: metav1.ObjectMeta{
						Namespace: namespace, Name: fmt.Sprintf("%s-%05d", name, start), ResourceVersion: "1",
						Labels: map[string]string{
							discoveryv1.LabelServiceName: name,
							discoveryv1.LabelManagedBy:   "endpointslice-controller.k8s.io",
						},
					},
					AddressType: discoveryv1.AddressTypeIPv4,
					Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
				}
				for _, i := range members[start:min(start+100, len(members))] {
					ready := i%s.PodsPerNode != 2
					sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
						Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", 100+i>>16, (i>>8)&255, i&255)},
						Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
						NodeName:   ptr.To(nodeName(i / s.PodsPerNode)),
						Zone:       ptr.To([]string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}[(i/s.PodsPerNode)%3]),
						TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: fmt.Sprintf("%s-7d9f8c6b5-%05d", name, i), UID: types.UID(fmt.Sprintf("pod-%d", i))},
					})
				}
				if err := add(f.EndpointSlices(), kube.StripEndpointSlice, sl); err != nil {
					return err
				}
			}
		}
		if err := add(f.StatefulSets(), kube.StripStatefulSet, StatefulSet(namespace, "db")); err != nil {
			return err
		}
	}
	for d := range 5 {
		if err := add(f.DaemonSets(), kube.StripDaemonSet, DaemonSet("kube-system", fmt.Sprintf("daemon-%d", d), int32(s.Nodes))); err != nil {
			return err
		}
	}
	return nil
}

func podTemplate(name string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: name, Image: "example/" + name + ":1.2.3",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "PORT", Value: "8080"}},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
			}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}},
		}}},
	}
}

// Deployment returns a Deployment of replicas pods, all of them available,
// with the pod template, selector and revision annotation the API server
// would send, so that what its transform drops is there to drop.
func Deployment(namespace, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1", Generation: 1,
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "1"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": name}},
			Template: podTemplate(name),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas, UpdatedReplicas: replicas},
	}
}

// StatefulSet returns a StatefulSet of three pods, all of them ready, with a
// pod template.
func StatefulSet(namespace, name string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1", Generation: 1},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Template: podTemplate(name),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType}},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 3, ReadyReplicas: 3, AvailableReplicas: 3, UpdatedReplicas: 3, CurrentReplicas: 3},
	}
}

// DaemonSet returns a DaemonSet running on nodes nodes, all of them
// available, with a pod template and a rolling update of 10% at a time.
func DaemonSet(namespace, name string, nodes int32) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, ResourceVersion: "1", Generation: 1},
		Spec: appsv1.DaemonSetSpec{Template: podTemplate("daemon"),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromString("10%"))}}},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: nodes, CurrentNumberScheduled: nodes,
			NumberReady: nodes, NumberAvailable: nodes, UpdatedNumberScheduled: nodes},
	}
}
