package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// The Kubernetes version skew policy (kubernetes/website
// content/en/releases/version-skew-policy.md): kube-apiserver moves one
// minor release at a time; kubelet and kube-proxy must not be newer than
// kube-apiserver and may be up to three minor releases older (two before
// 1.25); so before kube-apiserver moves to the target, every kubelet must be
// at least target-3, and once it has moved the nodes are rolled to it.
const maxKubeletLag = 3

// nodeVersions are the nodes of one node group on one kubelet release.
type nodeVersions struct {
	group   string
	version Version
	nodes   []string
}

// NodegroupOf returns a node's node group: label (when given), else kops'
// kops.k8s.io/instancegroup, else EKS' eks.amazonaws.com/nodegroup, else "".
func NodegroupOf(n *corev1.Node, label string) string {
	for _, k := range []string{label, kube.LabelKopsInstanceGroup, kube.LabelEKSNodegroup} {
		if k != "" && n.Labels[k] != "" {
			return n.Labels[k]
		}
	}
	return ""
}

// CheckSkew judges the versions of the control plane (the API server's
// /version), of every node's kubelet and of the kube-proxy DaemonSet in
// kube-system, now and at target, and says in which order the upgrade must
// go.
func CheckSkew(ctx context.Context, cs kubernetes.Interface, target Version, nodegroupLabel string) []Finding {
	var out []Finding
	add := func(sev Severity, object, source, msg, group string) {
		out = append(out, Finding{Check: FamilySkew, Severity: sev, Object: object, Source: source, Message: msg, NodeGroup: group})
	}
	sv, err := cs.Discovery().ServerVersion()
	if err != nil {
		add(Unknown, "control plane", "/version", fmt.Sprintf("reading the API server version: %v", err), "")
		return out
	}
	cp, err := ParseVersion(sv.GitVersion)
	if err != nil {
		add(Unknown, "control plane", "/version", fmt.Sprintf("API server version %q: %v", sv.GitVersion, err), "")
		return out
	}
	switch {
	case target.Less(cp):
		add(Blocker, "control plane", "/version", fmt.Sprintf("the control plane runs %s, newer than the target %s: Kubernetes is not downgraded", sv.GitVersion, target), "")
	case target == cp:
		add(Info, "control plane", "/version", fmt.Sprintf("the control plane already runs %s: only the nodes are left to roll", sv.GitVersion), "")
	case target.Major != cp.Major || target.Minor > cp.Minor+1:
		add(Blocker, "control plane", "/version", fmt.Sprintf("the control plane runs %s; it moves one minor release at a time: upgrade to %d.%d first and run preflight again", sv.GitVersion, cp.Major, cp.Minor+1), "")
	}

	nl, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		add(Unknown, "nodes", "cluster", fmt.Sprintf("listing nodes: %v", err), "")
		return out
	}
	groups := map[string]*nodeVersions{}
	for i := range nl.Items {
		n := &nl.Items[i]
		kv := n.Status.NodeInfo.KubeletVersion
		v, err := ParseVersion(kv)
		if err != nil {
			add(Unknown, "node "+n.Name, "node status", fmt.Sprintf("kubelet version %q: %v", kv, err), NodegroupOf(n, nodegroupLabel))
			continue
		}
		g := NodegroupOf(n, nodegroupLabel)
		k := g + "\x00" + v.String()
		if groups[k] == nil {
			groups[k] = &nodeVersions{group: g, version: v}
		}
		groups[k].nodes = append(groups[k].nodes, n.Name)
	}
	var gs []*nodeVersions
	for _, g := range groups {
		sort.Strings(g.nodes)
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].group != gs[j].group {
			return gs[i].group < gs[j].group
		}
		return gs[i].version.Less(gs[j].version)
	})
	floor := Version{target.Major, target.Minor - maxKubeletLag}
	var first, after []string
	for _, g := range gs {
		name := g.group
		if name == "" {
			name = "(no node group label)"
		}
		obj := "node group " + name
		what := fmt.Sprintf("%d nodes on kubelet %s (%s)", len(g.nodes), g.version, list(g.nodes, 5))
		switch {
		case cp.Less(g.version):
			add(Blocker, obj, "node status", fmt.Sprintf("%s: newer than the control plane %s, outside the skew policy already", what, cp), g.group)
		case g.version.Less(floor):
			when := "replace them before the control plane moves"
			if !cp.Less(target) {
				when = "outside the skew policy already; replace them"
			}
			add(Blocker, obj, "node status", fmt.Sprintf("%s: older than %s (target %s minus %d), the oldest kubelet a %s API server supports: %s", what, floor, target, maxKubeletLag, target, when), g.group)
			first = append(first, name)
		case g.version.Less(target):
			add(Info, obj, "node status", fmt.Sprintf("%s: within the skew policy of %s; roll after the control plane", what, target), g.group)
			after = append(after, name)
		}
	}
	order := []string{}
	if len(first) > 0 {
		order = append(order, fmt.Sprintf("replace node groups %s with kubelets of at least %s", strings.Join(uniq(first), ", "), floor))
	}
	if cp.Less(target) {
		order = append(order, fmt.Sprintf("upgrade the control plane to %s", target))
		order = append(order, "upgrade the add-ons (kube-proxy, CoreDNS, VPC CNI) to versions for "+target.String())
	}
	if len(after) > 0 {
		order = append(order, fmt.Sprintf("roll node groups %s to kubelet %s", strings.Join(uniq(after), ", "), target))
	}
	if len(order) > 0 {
		for i := range order {
			order[i] = fmt.Sprintf("%d) %s", i+1, order[i])
		}
		add(Info, "upgrade order", "skew policy", strings.Join(order, "; "), "")
	}
	out = append(out, checkKubeProxySkew(ctx, cs, cp, target)...)
	return out
}

// checkKubeProxySkew judges the kube-proxy DaemonSet's image version (its
// tag) against the control plane and the target. No kube-proxy DaemonSet is
// info (a cluster may run without one, e.g. with a CNI replacing it).
func checkKubeProxySkew(ctx context.Context, cs kubernetes.Interface, cp, target Version) []Finding {
	ds, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return []Finding{{Check: FamilySkew, Severity: Info, Object: "kube-proxy", Source: "kube-system/kube-proxy", Message: "no kube-proxy DaemonSet"}}
		}
		return []Finding{{Check: FamilySkew, Severity: Unknown, Object: "kube-proxy", Source: "kube-system/kube-proxy", Message: fmt.Sprintf("reading the kube-proxy DaemonSet: %v", err)}}
	}
	var out []Finding
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name != "kube-proxy" {
			continue
		}
		f := Finding{Check: FamilySkew, Object: "kube-proxy", Source: "kube-system/kube-proxy image " + c.Image}
		v, err := ParseVersion(imageTag(c.Image))
		floor := Version{target.Major, target.Minor - maxKubeletLag}
		switch {
		case err != nil:
			f.Severity, f.Message = Unknown, fmt.Sprintf("no version in the image tag %q", imageTag(c.Image))
		case cp.Less(v):
			f.Severity, f.Message = Blocker, fmt.Sprintf("kube-proxy %s is newer than the control plane %s", v, cp)
		case v.Less(floor):
			f.Severity, f.Message = Blocker, fmt.Sprintf("kube-proxy %s is older than %s, the oldest a %s API server supports: upgrade it before the control plane", v, floor, target)
		case v.Less(target):
			f.Severity, f.Message = Info, fmt.Sprintf("kube-proxy %s: within the skew policy; upgrade it to %s after the control plane", v, target)
		default:
			continue
		}
		out = append(out, f)
	}
	return out
}

// imageTag returns the tag of an image reference ("" without one).
func imageTag(image string) string {
	image, _, _ = strings.Cut(image, "@")
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[i+1:]
	}
	return ""
}

// list writes at most n names and how many more.
func list(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}

func uniq(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
