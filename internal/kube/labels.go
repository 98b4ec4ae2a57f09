package kube

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Well-known node labels: the one definition the collectors, the roll,
// preflight and hold read.
const (
	// LabelZone is the node's zone, set by the cloud provider's node
	// controller (k8s.io/api/core/v1 LabelTopologyZone,
	// "topology.kubernetes.io/zone").
	LabelZone = corev1.LabelTopologyZone
	// LabelZoneLegacy is the zone's beta key, which older kubelets and
	// cloud providers still set (LabelFailureDomainBetaZone,
	// "failure-domain.beta.kubernetes.io/zone").
	LabelZoneLegacy = corev1.LabelFailureDomainBetaZone
	// LabelInstanceType is the node's instance type, set by the kubelet
	// from the cloud provider (LabelInstanceTypeStable,
	// "node.kubernetes.io/instance-type").
	LabelInstanceType = corev1.LabelInstanceTypeStable
	// LabelInstanceTypeLegacy is the instance type's beta key
	// (LabelInstanceType, "beta.kubernetes.io/instance-type").
	LabelInstanceTypeLegacy = corev1.LabelInstanceType
	// LabelKopsInstanceGroup is the kops instance group of the node, set
	// by kops on the nodes of each InstanceGroup (and the same key is the
	// tag of the group's Auto Scaling group).
	LabelKopsInstanceGroup = "kops.k8s.io/instancegroup"
	// LabelEKSNodegroup is the EKS managed node group of the node, set by
	// EKS on the nodes it launches.
	LabelEKSNodegroup = "eks.amazonaws.com/nodegroup"
	// LabelKarpenterNodePool is the Karpenter NodePool that launched the
	// node, set by Karpenter on its NodeClaims and their nodes.
	LabelKarpenterNodePool = "karpenter.sh/nodepool"
)

// InstanceID returns the EC2 instance ID of an AWS provider ID (a node's
// spec.providerID, "aws:///us-east-1a/i-0123456789abcdef0" as the AWS cloud
// provider sets it), or "" for other providers.
func InstanceID(providerID string) string {
	if !strings.HasPrefix(providerID, "aws://") {
		return ""
	}
	id := providerID[strings.LastIndexByte(providerID, '/')+1:]
	if !strings.HasPrefix(id, "i-") {
		return ""
	}
	return id
}
