package preflight

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// The rules of the workloads family: what an upgrade, which drains and
// replaces every node, will take down or hurt. Each is the Rule of its
// findings and the key a preflight policy sets its severity by (warning by
// default). Every rule judges the pods a drain evicts: DaemonSet pods,
// mirror pods, finished and terminating pods and unscheduled pods are left
// out, as kubectl drain leaves them (k8s.io/kubectl pkg/drain/filters.go;
// drainEvicts). Pods of Jobs (and so of CronJobs) are left out of every
// rule: they run to completion, and their controller re-creates an evicted
// pod (disruptions of a Job are for its podFailurePolicy, not for this
// family).
const (
	// RuleSingleReplicaService: a workload of one replica (spec.replicas
	// 1) whose pods a Service selects. A drain evicts the pod before its
	// replacement runs: the ReplicaSet controller creates the replacement
	// once the old pod is terminating (k8s.io/kubernetes
	// pkg/controller/controller_utils.go FilterActivePods), the StatefulSet
	// controller only once it is gone (pkg/controller/statefulset
	// stateful_set_control.go), and the EndpointSlice controller takes a
	// terminating pod out of the ready endpoints (k8s.io/endpointslice
	// utils.go podToEndpoint). The Service has no ready endpoint meanwhile.
	RuleSingleReplicaService = "single-replica-service"
	// RuleOneNode: all the pods of a workload of two or more replicas on one
	// node, with no constraint the scheduler keeps: a required pod
	// anti-affinity on kubernetes.io/hostname (or a zone key), or a
	// topologySpreadConstraint with whenUnsatisfiable DoNotSchedule. The
	// scheduler only filters nodes on those
	// (pkg/scheduler/framework/plugins/interpodaffinity/filtering.go,
	// podtopologyspread/filtering.go); preferred anti-affinity and
	// ScheduleAnyway only score nodes (their scoring.go) and may put the
	// replacements together again.
	RuleOneNode = "one-node"
	// RuleOneZone: all the pods of a workload of two or more replicas, on
	// two or more nodes, in one zone (topology.kubernetes.io/zone) of a
	// cluster of several, with no zone constraint the scheduler keeps (as
	// RuleOneNode, on topology.kubernetes.io/zone): a roll that takes the
	// zone's nodes together (roll --order zone, or a node group of that
	// zone replaced at once) takes all of them.
	RuleOneZone = "one-zone"
	// RuleNoPDB: no PodDisruptionBudget selects the pods of a workload of
	// two or more replicas, and one roll step (--max-unavailable nodes of
	// one node group, drained together) can evict all its ready pods: the
	// Eviction API evicts a pod no PDB selects without a check
	// (k8s.io/kubernetes pkg/registry/core/pod/storage/eviction.go).
	RuleNoPDB = "no-pdb"
	// RulePDBBlocks: the PDB of a workload never allows an eviction
	// (maxUnavailable 0, minAvailable 100% or at least the replicas:
	// collectors/pdb.Unsatisfiable), or two PDBs select its pods (the
	// Eviction API then refuses: eviction.go "This pod has more than one
	// PodDisruptionBudget"). Every drain of a node holding its pods is
	// refused; upgradeguard roll gives up the drain (at once when it reads
	// the PDB's spec as unsatisfiable or the Eviction API names two PDBs,
	// at the latest after --drain-timeout: internal/roll/drain.go evict),
	// uncordons the node and stops.
	RulePDBBlocks = "pdb-blocks"
	// RuleNoReadinessProbe: a Service selects the pods, and a container
	// serving it (one declaring ports, else every container) has neither
	// a readinessProbe nor a startupProbe: the kubelet calls a container
	// without them ready as soon as it started
	// (pkg/kubelet/prober/prober_manager.go UpdatePodStatus), and the
	// EndpointSlice controller sends it traffic, before it serves.
	RuleNoReadinessProbe = "no-readiness-probe"
	// RuleGraceOverDrainTimeout: terminationGracePeriodSeconds (30 when
	// unset) longer than the roll's drain timeout: an eviction deletes the
	// pod with its own grace period (eviction.go), the kubelet waits up to
	// it, and the roll waits for the pod to be gone
	// (internal/roll/drain.go), so the drain can time out and the roll
	// stop.
	RuleGraceOverDrainTimeout = "grace-over-drain-timeout"
	// RulePreStopOverGrace: a preStop hook (a sleep action, or an exec
	// command whose sleeps can be read) longer than the grace period: the
	// kubelet runs the hook for at most the grace period, then sends
	// SIGTERM with the minimum of 2 seconds left before SIGKILL
	// (pkg/kubelet/kuberuntime/kuberuntime_container.go executePreStopHook
	// and killContainer).
	RulePreStopOverGrace = "prestop-over-grace"
	// RuleEmptyDir: emptyDir volumes: their data lives as long as the pod
	// (https://kubernetes.io/docs/concepts/storage/volumes/#emptydir);
	// kubectl drain refuses such pods without --delete-emptydir-data
	// (k8s.io/kubectl pkg/drain/filters.go localStorageFilter), as
	// upgradeguard roll does without --force-local-storage.
	RuleEmptyDir = "emptydir"
	// RuleNoController: a pod without a controller: a drain deletes it for
	// good, nothing re-creates it; kubectl drain refuses it without
	// --force (filters.go unreplicatedFilter), as upgradeguard roll does
	// without --force-unmanaged.
	RuleNoController = "no-controller"
	// RuleZonalVolume: pods bound to zonal volumes (a PV whose node
	// affinity names one zone on topology.kubernetes.io/zone or
	// topology.ebs.csi.aws.com/zone, or an EBS volume) in a zone whose
	// nodes are all in one node group (NodegroupOf): the scheduler only
	// places the pod on a node of the volume's zone (VolumeBinding plugin,
	// pkg/scheduler/framework/plugins/volumebinding/binder.go: "node(s)
	// had volume node affinity conflict"), so while that node group is
	// rolled the pod can stay Pending. Judged for StatefulSets and for
	// any other workload whose pods claim such volumes.
	RuleZonalVolume = "zonal-volume"
)

// WorkloadRules are the rules of the workloads family, in report order.
var WorkloadRules = []string{
	RuleSingleReplicaService, RuleOneNode, RuleOneZone, RuleNoPDB, RulePDBBlocks,
	RuleNoReadinessProbe, RuleGraceOverDrainTimeout, RulePreStopOverGrace,
	RuleEmptyDir, RuleNoController, RuleZonalVolume,
}

// workloadsCheck is one run of the workloads family: the policy and the
// findings so far.
type workloadsCheck struct {
	policy         WorkloadsPolicy
	drainTimeout   time.Duration
	maxUnavailable int
	out            []Finding
	// skip are rules not judged because a list they need failed.
	skip map[string]bool
}

// CheckWorkloads reads the cluster with a few paginated lists (nodes, pods,
// ReplicaSets, Deployments, StatefulSets, Services, PodDisruptionBudgets,
// PersistentVolumeClaims and PersistentVolumes) and reports, per workload
// (the top controller of its pods: a ReplicaSet's Deployment, a
// StatefulSet; a pod without controller is its own workload), what the
// upgrade will take down: the rules of WorkloadRules. Severities, the
// roll's drain timeout and max-unavailable and the namespaces left out come
// from the policy. Nothing is asked per workload.
func CheckWorkloads(ctx context.Context, cs kubernetes.Interface, p WorkloadsPolicy, nodegroupLabel string) []Finding {
	c := &workloadsCheck{policy: p, drainTimeout: p.drainTimeout(), maxUnavailable: p.maxUnavailable(), skip: map[string]bool{}}
	ix, err := c.read(ctx, cs, nodegroupLabel)
	if err != nil {
		return append(c.out, *err)
	}
	ws := ix.workloads()
	ix.indexEndpoints(ws)
	for _, w := range ws {
		c.judge(ix, w)
	}
	sort.SliceStable(c.out, func(i, j int) bool {
		a, b := c.out[i], c.out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Workload != b.Workload {
			return a.Workload < b.Workload
		}
		return a.Rule < b.Rule
	})
	c.out = append(c.out, Finding{Check: FamilyWorkloads, Severity: Info, Object: "workloads", Source: "cluster",
		Message: fmt.Sprintf("judged %d workloads (%d pods a drain evicts) on %d nodes, with %d Services and %d PDBs; roll drain timeout %s, max-unavailable %d",
			len(ws), ix.evictable, len(ix.nodes), ix.services.len(), ix.pdbs.len(), c.drainTimeout, c.maxUnavailable)})
	return c.out
}

// add appends a finding of rule about w at the severity the policy gives
// the rule (none when off or not judged).
func (c *workloadsCheck) add(rule string, w *workload, msg, effect, fix string) {
	sev := c.policy.severity(rule)
	if sev == Off || c.skip[rule] {
		return
	}
	c.out = append(c.out, Finding{Check: FamilyWorkloads, Severity: sev, Rule: rule,
		Object: w.kind + " " + w.namespace + "/" + w.name, Source: "cluster",
		Namespace: w.namespace, Workload: w.kind + "/" + w.name,
		Message: msg, Effect: effect, Fix: fix})
}

// unknown records a list that failed and the rules it leaves unjudged.
func (c *workloadsCheck) unknown(what string, err error, rules ...string) {
	for _, r := range rules {
		c.skip[r] = true
	}
	msg := fmt.Sprintf("listing %s: %v", what, err)
	if len(rules) > 0 {
		msg += fmt.Sprintf("; not judged: %s", list(rules, len(rules)))
	}
	c.out = append(c.out, Finding{Check: FamilyWorkloads, Severity: Unknown, Object: what, Source: "cluster", Message: msg})
}

// judge applies every rule to one workload.
func (c *workloadsCheck) judge(ix *clusterIndex, w *workload) {
	// The newest pod is of the current template (mid-rollout, the new
	// ReplicaSet's); PDBs are judged on its labels. Services select pod by
	// pod (the EndpointSlice controller matches each pod's own labels), so
	// every Service selecting any of the pods counts.
	rep := w.template()
	services := ix.servicesOf(w)
	pdbs := ix.pdbs.matching(w.namespace, rep.Labels)
	sort.Slice(pdbs, func(i, j int) bool { return pdbs[i].Name < pdbs[j].Name })
	if w.kind == "Pod" {
		c.noController(w)
	} else {
		c.singleReplica(ix, w, services)
		c.placement(ix, w, pdbs)
		c.budgets(ix, w, pdbs)
		c.zonalVolumes(ix, w)
	}
	c.readiness(w, services)
	c.termination(w)
	c.emptyDir(w)
}

// podSpecPath is where the workload's pod spec is: its template's, or
// the pod's own.
func (w *workload) podSpecPath() string {
	if w.kind == "Pod" {
		return "spec"
	}
	return "spec.template.spec"
}

// servicesOf names Services for a message.
func servicesOf(svcs []*corev1.Service) []string {
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.Name
	}
	sort.Strings(names)
	return names
}
