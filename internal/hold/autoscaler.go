package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

const (
	// AnnotationScaleDownDisabled is cluster-autoscaler's per-node opt-out
	// of scale-down (cluster-autoscaler FAQ, "How can I prevent Cluster
	// Autoscaler from scaling down a particular node?"; read in
	// core/scaledown/eligibility/eligibility.go).
	AnnotationScaleDownDisabled = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
	// LabelScaleDownDisabled marks the nodes on which the hold set that
	// annotation, so it removes only its own (a node a person annotated is
	// left alone) and a restarted controller finds them.
	LabelScaleDownDisabled = "upgradeguard.io/hold-scale-down-disabled"
)

// DefaultGroupLabels are the node labels naming a node group, tried in
// order after Autoscaler.GroupLabel.
var DefaultGroupLabels = []string{kube.LabelKopsInstanceGroup, kube.LabelEKSNodegroup, kube.LabelKarpenterNodePool}

// Autoscaler keeps cluster-autoscaler from removing the nodes of node
// groups that are being upgraded while the hold is on: it annotates them
// with scale-down-disabled, and removes the annotation when the hold ends
// or the group's upgrade is over.
//
// A group's upgrade is in progress when its nodes run more than one kubelet
// version, or one of them is cordoned or carries Karpenter's disruption
// taint (kops rolling-update, EKS managed node group updates, Karpenter and
// upgradeguard's roll all cordon or taint a node before draining it).
type Autoscaler struct {
	Client kubernetes.Interface
	// Selector is the label selector of the nodes considered (the policy's
	// node groups); "" is every node.
	Selector string
	// GroupLabel is the node label naming the node group, tried before
	// DefaultGroupLabels.
	GroupLabel string
}

// Kind implements Target.
func (*Autoscaler) Kind() string { return "autoscaler" }

func autoscalerTarget(group string) string { return "autoscaler/" + group }

func (a *Autoscaler) group(n *corev1.Node) string {
	for _, l := range append([]string{a.GroupLabel}, DefaultGroupLabels...) {
		if l == "" {
			continue
		}
		if v := n.Labels[l]; v != "" {
			return v
		}
	}
	return ""
}

// upgrading reports whether a group's nodes show an upgrade in progress,
// and why.
func upgrading(nodes []*corev1.Node) (bool, string) {
	versions := map[string]bool{}
	for _, n := range nodes {
		versions[n.Status.NodeInfo.KubeletVersion] = true
		if n.Spec.Unschedulable {
			return true, "node " + n.Name + " is cordoned"
		}
		for _, t := range n.Spec.Taints {
			if t.Key == "karpenter.sh/disrupted" {
				return true, "node " + n.Name + " is being disrupted by Karpenter"
			}
		}
	}
	if len(versions) > 1 {
		return true, fmt.Sprintf("kubelet versions %v", slices.Sorted(maps.Keys(versions)))
	}
	return false, ""
}

// Apply implements Target.
func (a *Autoscaler) Apply(ctx context.Context, d Decision, r *Reporter) error {
	if d.Action == Keep {
		return nil
	}
	// ResourceVersion "0": served from the API server's watch cache.
	marked, err := a.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabelScaleDownDisabled, ResourceVersion: "0"})
	if err != nil {
		return fmt.Errorf("listing the nodes marked %s: %w", LabelScaleDownDisabled, err)
	}
	want := map[string]bool{}      // nodes that must carry the annotation
	groupOf := map[string]string{} // node -> group
	why := map[string]string{}     // group -> why its upgrade is in progress
	var considered []corev1.Node
	if d.Action == Hold {
		l, err := a.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: a.Selector, ResourceVersion: "0"})
		if err != nil {
			return fmt.Errorf("listing the nodes %q: %w", a.Selector, err)
		}
		considered = l.Items
		groups := map[string][]*corev1.Node{}
		for i := range considered {
			n := &considered[i]
			if g := a.group(n); g != "" {
				groups[g] = append(groups[g], n)
				groupOf[n.Name] = g
			}
		}
		for g, nodes := range groups {
			if ok, reason := upgrading(nodes); ok {
				why[g] = reason
				for _, n := range nodes {
					want[n.Name] = true
				}
			}
		}
	}
	var errs []error
	active := map[string]bool{}
	// Mark what needs it.
	for i := range considered {
		n := &considered[i]
		if !want[n.Name] {
			continue
		}
		g := groupOf[n.Name]
		active[g] = true
		if n.Labels[LabelScaleDownDisabled] != "" {
			continue
		}
		if _, set := n.Annotations[AnnotationScaleDownDisabled]; set {
			continue // a person's annotation: not ours to add or remove
		}
		if err := a.patch(ctx, n, true); err != nil {
			errs = append(errs, err)
			continue
		}
		r.Paused(ctx, autoscalerTarget(g), nodeRef(n), d, fmt.Sprintf("node %s annotated %s=true (upgrade in progress in group %s: %s)", n.Name, AnnotationScaleDownDisabled, g, why[g]))
	}
	// Unmark what no longer needs it.
	for i := range marked.Items {
		n := &marked.Items[i]
		if want[n.Name] {
			continue
		}
		g := a.group(n)
		if err := a.patch(ctx, n, false); err != nil {
			errs = append(errs, err)
			continue
		}
		what := "the hold ended"
		if d.Action == Hold {
			what = "the group's upgrade is over"
		}
		r.Resumed(ctx, autoscalerTarget(g), nodeRef(n), d, fmt.Sprintf("node %s: %s removed (%s)", n.Name, AnnotationScaleDownDisabled, what))
	}
	for g := range active {
		r.Active(autoscalerTarget(g), true)
	}
	return errors.Join(errs...)
}

func nodeRef(n *corev1.Node) *corev1.ObjectReference {
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}
}

// patch sets or removes the annotation and the hold's label together.
func (a *Autoscaler) patch(ctx context.Context, n *corev1.Node, on bool) error {
	var label, ann any
	if on {
		label, ann = "true", "true"
	}
	raw, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]any{LabelScaleDownDisabled: label},
		"annotations": map[string]any{AnnotationScaleDownDisabled: ann},
	}})
	if err != nil {
		return err
	}
	if _, err := a.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, raw, metav1.PatchOptions{FieldManager: eventSource}); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	return nil
}
