package preflight

import (
	"context"
	"fmt"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
)

// AddonCompatibility is what EKS publishes of an add-on for one Kubernetes
// release: the add-on versions compatible with it and the default one.
type AddonCompatibility struct {
	Versions []string
	Default  string
}

// AddonVersions tells which versions of an EKS add-on ("vpc-cni",
// "coredns", "kube-proxy") are compatible with a Kubernetes release.
type AddonVersions interface {
	Compatible(ctx context.Context, addon string, release Version) (AddonCompatibility, error)
}

// EKSAddonVersions asks EKS' DescribeAddonVersions (every page), filtered
// by the Kubernetes release.
type EKSAddonVersions struct{ Client *eks.Client }

// Compatible implements AddonVersions.
func (e EKSAddonVersions) Compatible(ctx context.Context, addon string, release Version) (AddonCompatibility, error) {
	var out AddonCompatibility
	p := eks.NewDescribeAddonVersionsPaginator(e.Client, &eks.DescribeAddonVersionsInput{
		AddonName: aws.String(addon), KubernetesVersion: aws.String(release.String()),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("eks DescribeAddonVersions %s for %s: %w", addon, release, err)
		}
		for _, a := range page.Addons {
			if aws.ToString(a.AddonName) != addon {
				continue
			}
			for _, v := range a.AddonVersions {
				for _, c := range v.Compatibilities {
					if aws.ToString(c.ClusterVersion) != release.String() {
						continue
					}
					out.Versions = append(out.Versions, aws.ToString(v.AddonVersion))
					if c.DefaultVersion {
						out.Default = aws.ToString(v.AddonVersion)
					}
				}
			}
		}
	}
	return out, nil
}

// semverCore is the vX.Y.Z an image tag and an add-on version share:
// EKS' images are tagged v1.19.2-eksbuild.1 (kube-proxy
// v1.33.0-minimal-eksbuild.1) for the add-on version v1.19.2-eksbuild.1
// (v1.33.0-eksbuild.1).
var semverCore = regexp.MustCompile(`^v?(\d+\.\d+\.\d+)`)

func core(v string) string {
	if m := semverCore.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return ""
}

// judgeEKSAddon judges a running add-on's image tag against EKS'
// compatibility list for the target.
func judgeEKSAddon(f Finding, addon, tag string, target Version, compat AddonCompatibility) Finding {
	running := core(tag)
	if len(compat.Versions) == 0 {
		f.Severity, f.Message = Unknown, fmt.Sprintf("runs %s; EKS lists no %s version for Kubernetes %s", orDash(tag), addon, target)
		return f
	}
	for _, v := range compat.Versions {
		if running != "" && core(v) == running {
			f.Severity, f.Message = Info, fmt.Sprintf("runs %s, compatible with Kubernetes %s (EKS lists %s)", tag, target, v)
			return f
		}
	}
	if addon == "kube-proxy" {
		f.Severity, f.Message = Info, fmt.Sprintf("runs %s; after the control plane, update it to EKS' default for %s: %s", orDash(tag), target, compat.Default)
		return f
	}
	f.Severity = Warning
	f.Message = fmt.Sprintf("runs %s, not among the versions EKS lists as compatible with Kubernetes %s; update it (EKS' default for %s: %s)", orDash(tag), target, target, compat.Default)
	return f
}
