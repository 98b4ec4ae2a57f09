package preflight

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Families are the finding families Run knows, in report order.
var Families = []string{FamilyAPIsByUse, FamilyAPIsBySource, FamilySkew, FamilyCapacity, FamilyDrain, FamilyAddons, FamilyWorkloads}

// Options are what a preflight run reads. A family asked for in Checks whose
// source is missing (no query client, no cluster) is one unknown finding:
// preflight never calls clean what it did not look at.
type Options struct {
	Target Version
	// Checks are the families to run (default: all of Families).
	Checks []string
	// Manifests are the files of -f (see ManifestFiles).
	Manifests []string
	// Kube and Dynamic are the cluster's clients; nil: no cluster.
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// NoCluster says the cluster was left out on purpose: the Helm
	// releases are then not read (info), where a cluster that could not be
	// reached makes them unknown.
	NoCluster bool
	// Query asks Thanos Query or Prometheus; nil: no query URL.
	Query Querier
	// Matchers are extra label matchers of the API server's series
	// (`cluster="prod"`); Window is how far back a request counts.
	Matchers string
	Window   time.Duration
	// NodegroupLabel names the node label of the node group, tried before
	// kops.k8s.io/instancegroup and eks.amazonaws.com/nodegroup.
	NodegroupLabel string
	// LocalCapacity, without a query client, runs the exporter's AWS
	// collectors once for the capacity family (nil: capacity unknown).
	LocalCapacity *LocalCapacity
	// Addons answers EKS' add-on compatibility; nil: not on EKS (the VPC
	// CNI's and CoreDNS' compatibility is then unknown).
	Addons AddonVersions
	// Policy is the preflight policy (--policy): the workloads family's
	// roll settings and rule severities; the zero value is the default.
	Policy Policy
}

// Run runs the families asked for and returns the report.
func Run(ctx context.Context, o Options, logger *slog.Logger) *Report {
	r := &Report{Target: o.Target}
	checks := o.Checks
	if len(checks) == 0 {
		checks = Families
	}
	want := func(f string) bool { return slices.Contains(checks, f) }
	missing := func(family, what string) {
		r.Add(Finding{Check: family, Severity: Unknown, Object: family, Source: "-", Message: "not checked: " + what})
	}
	table := NewAPITable()
	if o.Dynamic != nil && (want(FamilyAPIsByUse) || want(FamilyAPIsBySource)) {
		n, err := AddClusterCRDs(ctx, o.Dynamic, table)
		if err != nil {
			r.Add(Finding{Check: FamilyAPIsBySource, Severity: Unknown, Object: "CustomResourceDefinitions", Source: "cluster",
				Message: fmt.Sprintf("deprecated CRD versions unknown: %v", err)})
		}
		logger.Debug("deprecated CRD versions", "count", n)
	}
	if table.Release.Less(o.Target) && (want(FamilyAPIsByUse) || want(FamilyAPIsBySource)) {
		r.Add(Finding{Check: FamilyAPIsBySource, Severity: Warning, Object: "API table", Source: "k8s.io/api " + table.Release.String(),
			Message: fmt.Sprintf("the API lifecycle table is of Kubernetes %s, older than the target %s: removals announced after %s are not known; use an upgradeguard built with a newer k8s.io/api", table.Release, o.Target, table.Release)})
	}
	if want(FamilyAPIsByUse) {
		began := time.Now()
		if o.Query == nil {
			missing(FamilyAPIsByUse, "no --query.url")
		} else {
			r.Add(CheckAPIsByUse(ctx, o.Query, o.Matchers, o.Window, table, o.Target)...)
		}
		logger.Debug("apis by use", "duration", time.Since(began))
	}
	if want(FamilyAPIsBySource) {
		if len(o.Manifests) > 0 {
			r.Add(CheckManifests(o.Manifests, table, o.Target)...)
		}
		switch {
		case o.Kube == nil && o.NoCluster && len(o.Manifests) > 0:
			r.Add(Finding{Check: FamilyAPIsBySource, Severity: Info, Object: "Helm releases", Source: "-", Message: "not read (--no-cluster)"})
		case o.Kube == nil:
			missing(FamilyAPIsBySource, "no cluster for the Helm releases (--kubeconfig)")
		default:
			r.Add(CheckHelmReleases(ctx, o.Kube, table, o.Target)...)
		}
	}
	if want(FamilySkew) {
		if o.Kube == nil {
			missing(FamilySkew, "no cluster (--kubeconfig)")
		} else {
			r.Add(CheckSkew(ctx, o.Kube, o.Target, o.NodegroupLabel)...)
		}
	}
	if want(FamilyCapacity) {
		switch {
		case o.Query != nil:
			r.Add(CheckCapacity(ctx, o.Query, o.Matchers)...)
		case o.LocalCapacity != nil:
			r.Add(JudgeCapacity(CapacityFromAWS(ctx, *o.LocalCapacity))...)
		default:
			missing(FamilyCapacity, "no --query.url (the exporter's AWS metrics), nor --aws.region and a cluster to ask AWS directly")
		}
	}
	if want(FamilyDrain) {
		if o.Kube == nil {
			missing(FamilyDrain, "no cluster (--kubeconfig)")
		} else {
			r.Add(CheckDrainBlockers(ctx, o.Kube, o.NodegroupLabel)...)
		}
	}
	if want(FamilyAddons) {
		if o.Kube == nil {
			missing(FamilyAddons, "no cluster (--kubeconfig)")
		} else {
			r.Add(CheckAddons(ctx, o.Kube, o.Target, o.Addons)...)
		}
	}
	if want(FamilyWorkloads) {
		if o.Kube == nil {
			missing(FamilyWorkloads, "no cluster (--kubeconfig)")
		} else {
			began := time.Now()
			r.Add(CheckWorkloads(ctx, o.Kube, o.Policy.Workloads, o.NodegroupLabel)...)
			logger.Debug("workloads", "duration", time.Since(began))
		}
	}
	return r
}
