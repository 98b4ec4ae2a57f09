package preflight

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// addon is a workload in kube-system that must move with the Kubernetes
// release.
type addon struct {
	name, kind, object, container string
}

// The add-ons as kops and EKS install them.
var addons = []addon{
	{"VPC CNI", "DaemonSet", "aws-node", "aws-node"},
	{"CoreDNS", "Deployment", "coredns", "coredns"},
	{"kube-proxy", "DaemonSet", "kube-proxy", "kube-proxy"},
}

// CheckAddons reports the running version (image) of the VPC CNI, CoreDNS
// and kube-proxy. kube-proxy's version is Kubernetes' own, judged by the
// skew check; it is named here as an add-on that moves right after the
// control plane. The compatibility of the VPC CNI's and CoreDNS' versions
// with the target is published by EKS (DescribeAddonVersions) and by the
// projects' release notes elsewhere: without it this check does not guess,
// and the finding is unknown, naming the image to check. An add-on that is
// not installed is info.
//
// With EKS (av not nil), each add-on's image tag is judged against
// DescribeAddonVersions' compatibility list for the target instead: listed
// is info; the VPC CNI or CoreDNS not listed is a warning naming EKS'
// default version; kube-proxy not listed is info (it moves after the
// control plane).
func CheckAddons(ctx context.Context, cs kubernetes.Interface, target Version, av AddonVersions) []Finding {
	var out []Finding
	for _, a := range addons {
		src := "kube-system/" + a.object
		var spec *corev1.PodSpec
		var err error
		switch a.kind {
		case "DaemonSet":
			ds, e := cs.AppsV1().DaemonSets("kube-system").Get(ctx, a.object, metav1.GetOptions{})
			if err = e; e == nil {
				spec = &ds.Spec.Template.Spec
			}
		case "Deployment":
			d, e := cs.AppsV1().Deployments("kube-system").Get(ctx, a.object, metav1.GetOptions{})
			if err = e; e == nil {
				spec = &d.Spec.Template.Spec
			}
		}
		f := Finding{Check: FamilyAddons, Object: a.name, Source: a.kind + " " + src}
		switch {
		case apierrors.IsNotFound(err):
			f.Severity, f.Message = Info, "not installed as "+a.kind+" "+src
			out = append(out, f)
			continue
		case err != nil:
			f.Severity, f.Message = Unknown, fmt.Sprintf("reading %s %s: %v", a.kind, src, err)
			out = append(out, f)
			continue
		}
		image := ""
		for _, c := range spec.Containers {
			if c.Name == a.container {
				image = c.Image
			}
		}
		if image == "" {
			f.Severity, f.Message = Unknown, fmt.Sprintf("no container %q", a.container)
			out = append(out, f)
			continue
		}
		f.Source += " image " + image
		tag := imageTag(image)
		if av != nil {
			compat, err := av.Compatible(ctx, eksAddonName(a.name), target)
			if err != nil {
				f.Severity, f.Message = Unknown, err.Error()
			} else {
				f = judgeEKSAddon(f, eksAddonName(a.name), tag, target, compat)
			}
			out = append(out, f)
			continue
		}
		if a.name == "kube-proxy" {
			f.Severity, f.Message = Info, fmt.Sprintf("runs %s; upgrade it to %s right after the control plane (see the skew findings)", tag, target)
		} else {
			f.Severity = Unknown
			f.Message = fmt.Sprintf("runs %s; its compatibility with Kubernetes %s is not published to this check (on EKS: aws eks describe-addon-versions --kubernetes-version %s --addon-name %s): check it before the upgrade",
				orDash(tag), target, target, eksAddonName(a.name))
		}
		out = append(out, f)
	}
	return out
}

func eksAddonName(name string) string {
	switch name {
	case "VPC CNI":
		return "vpc-cni"
	}
	return strings.ToLower(name)
}

func orDash(s string) string {
	if s == "" {
		return "(untagged)"
	}
	return s
}
