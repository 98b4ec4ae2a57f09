package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kwok manages the nodes that carry this annotation; they carry a NoSchedule
// taint of the same key and value.
const (
	KwokAnnotation      = "kwok.x-k8s.io/node"
	KwokAnnotationValue = "fake"
)

// DefaultNodeGroupLabel is the node group label of a Node without NodeGroupLabel.
const DefaultNodeGroupLabel = "kops.k8s.io/instancegroup"

// Node describes a simulated (kwok-managed) node.
type Node struct {
	Name           string
	Zone           string // topology.kubernetes.io/zone, e.g. "eu-west-1a"
	InstanceType   string // node.kubernetes.io/instance-type, e.g. "m5.xlarge"
	NodeGroup      string // value of NodeGroupLabel (omitted when empty)
	NodeGroupLabel string // default DefaultNodeGroupLabel
	Labels         map[string]string
	KubeletVersion string // status.nodeInfo.kubeletVersion, default KubernetesVersion
	// ProviderID, when set, ties the node to an instance of the fake AWS;
	// by default "aws:///<zone>/<InstanceID(Name)>".
	ProviderID string
}

// InstanceID is the fake EC2 instance id of a node: "i-" and 17 hex digits
// derived from the name.
func InstanceID(nodeName string) string {
	sum := sha256.Sum256([]byte(nodeName))
	return "i-" + hex.EncodeToString(sum[:])[:17]
}

// CreateNode creates a kwok-managed node. kwok makes it Ready within seconds
// and renews its Lease until StopHeartbeat.
func (tb *Testbed) CreateNode(ctx context.Context, n Node) error {
	if n.Name == "" {
		return fmt.Errorf("CreateNode: empty name")
	}
	if n.NodeGroupLabel == "" {
		n.NodeGroupLabel = DefaultNodeGroupLabel
	}
	if n.KubeletVersion == "" {
		n.KubeletVersion = KubernetesVersion
	}
	if n.ProviderID == "" {
		n.ProviderID = fmt.Sprintf("aws:///%s/%s", n.Zone, InstanceID(n.Name))
	}
	labels := map[string]string{
		"kubernetes.io/hostname": n.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"type":                   "kwok",
	}
	if n.Zone != "" {
		labels["topology.kubernetes.io/zone"] = n.Zone
	}
	if n.InstanceType != "" {
		labels["node.kubernetes.io/instance-type"] = n.InstanceType
	}
	if n.NodeGroup != "" {
		labels[n.NodeGroupLabel] = n.NodeGroup
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("16Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.Name,
			Labels:      labels,
			Annotations: map[string]string{KwokAnnotation: KwokAnnotationValue},
		},
		Spec: corev1.NodeSpec{
			ProviderID: n.ProviderID,
			Taints: []corev1.Taint{{
				Key: KwokAnnotation, Value: KwokAnnotationValue, Effect: corev1.TaintEffectNoSchedule,
			}},
		},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res.DeepCopy(),
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:  n.KubeletVersion,
				OperatingSystem: "linux",
				Architecture:    "amd64",
			},
		},
	}
	_, err := tb.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating node %s: %w", n.Name, err)
	}
	return nil
}

// NodeReady is a WaitFor condition: the node's Ready condition has status.
func (tb *Testbed) NodeReady(name string, status corev1.ConditionStatus) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		n, err := tb.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == status {
					return true, nil
				}
				return false, fmt.Errorf("node %s: Ready=%s (%s), want %s", name, c.Status, c.Reason, status)
			}
		}
		return false, fmt.Errorf("node %s: no Ready condition yet", name)
	}
}

// StopHeartbeat makes a node's kubelet wedged: its Lease is no longer renewed
// and its node and pod status no longer updated, while the Lease keeps its
// holder and duration as a wedged kubelet's would. The node lifecycle
// controller then marks it Ready=Unknown after Options.NodeMonitorGracePeriod.
//
// It takes the kwok annotation off the node and restarts kwok: kwok v0.8.0
// filters its node watch by the annotation on its side, so it never hears of
// the annotation's removal and would renew the Lease forever; started again,
// it lists only the nodes that still carry the annotation.
func (tb *Testbed) StopHeartbeat(ctx context.Context, node string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, KwokAnnotation)
	_, err := tb.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("stopping the heartbeat of node %s: %w", node, err)
	}
	if err := tb.restartKwok(ctx); err != nil {
		return fmt.Errorf("stopping the heartbeat of node %s: %w", node, err)
	}
	return nil
}

// ResumeHeartbeat undoes StopHeartbeat: it puts the kwok annotation back and
// restarts kwok (which does not notice the annotation's return either), which
// then manages the node again, renews its Lease and marks it Ready.
func (tb *Testbed) ResumeHeartbeat(ctx context.Context, node string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, KwokAnnotation, KwokAnnotationValue)
	_, err := tb.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("resuming the heartbeat of node %s: %w", node, err)
	}
	if err := tb.restartKwok(ctx); err != nil {
		return fmt.Errorf("resuming the heartbeat of node %s: %w", node, err)
	}
	return nil
}

// Workload describes a Deployment, when MinAvailable or MaxUnavailable
// is set its PodDisruptionBudget, and with Service its Service. Its pods carry the label app=<Name>.
type Workload struct {
	Namespace, Name string
	Replicas        int32
	NodeSelector    map[string]string
	MinAvailable    *intstr.IntOrString // PDB spec.minAvailable
	MaxUnavailable  *intstr.IntOrString // PDB spec.maxUnavailable
	EmptyDir        bool                // give the pods an emptyDir volume (local storage)
	// Service creates a ClusterIP Service of the same name selecting the
	// pods (port 80 to 8080): the EndpointSlice controller lists them.
	Service bool
}

// CreateWorkload creates the namespace if missing, a Deployment whose pods
// tolerate the kwok taint (kwok fakes them: the image is never pulled), and
// the Service and PodDisruptionBudget if they are asked for.
func (tb *Testbed) CreateWorkload(ctx context.Context, w Workload) error {
	if w.Namespace == "" {
		w.Namespace = "default"
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.Namespace}}
	if _, err := tb.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", w.Namespace, err)
	}
	labels := map[string]string{"app": w.Name}
	pod := corev1.PodSpec{
		NodeSelector: w.NodeSelector,
		Tolerations: []corev1.Toleration{{
			Key: KwokAnnotation, Operator: corev1.TolerationOpEqual, Value: KwokAnnotationValue,
			Effect: corev1.TaintEffectNoSchedule,
		}},
		Containers: []corev1.Container{{
			Name:  "app",
			Image: "pause", // never pulled: kwok fakes the containers
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("16Mi"),
			}},
		}},
	}
	if w.EmptyDir {
		pod.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		pod.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	}
	replicas := w.Replicas
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
	if _, err := tb.Client.AppsV1().Deployments(w.Namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating deployment %s/%s: %w", w.Namespace, w.Name, err)
	}
	if w.Service {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, Labels: labels},
			Spec: corev1.ServiceSpec{
				Selector: labels,
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		if _, err := tb.Client.CoreV1().Services(w.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating service %s/%s: %w", w.Namespace, w.Name, err)
		}
	}
	if w.MinAvailable == nil && w.MaxUnavailable == nil {
		return nil
	}
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, Labels: labels},
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: labels},
			MinAvailable:   w.MinAvailable,
			MaxUnavailable: w.MaxUnavailable,
		},
	}
	if _, err := tb.Client.PolicyV1().PodDisruptionBudgets(w.Namespace).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating PDB %s/%s: %w", w.Namespace, w.Name, err)
	}
	return nil
}
