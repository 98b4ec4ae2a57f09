package preflight

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// listPageSize is the page size of the workloads family's lists.
const listPageSize = 500

// listAll reads every page of a list: the API server answers Limit with a
// Continue token until the last page.
func listAll[T any, L interface{ GetContinue() string }](ctx context.Context, list func(context.Context, metav1.ListOptions) (L, error), items func(L) []T) ([]T, error) {
	var out []T
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		l, err := list(ctx, opts)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = items(l) // one page: no copy
		} else {
			out = append(out, items(l)...)
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}

// nodeInfo is what the workloads family keeps of a node.
type nodeInfo struct{ group, zone string }

// Zone labels of nodes and volumes, newest first.
var zoneKeys = []string{corev1.LabelTopologyZone, corev1.LabelFailureDomainBetaZone}

// ebsZoneKey is the EBS CSI driver's zone key of its PVs' node affinity.
const ebsZoneKey = "topology.ebs.csi.aws.com/zone"

// zoneOf returns the zone label of a node or volume, or "".
func zoneOf(l map[string]string) string {
	for _, k := range zoneKeys {
		if z := l[k]; z != "" {
			return z
		}
	}
	return ""
}

// nsName keys a namespaced object.
type nsName struct{ namespace, name string }

// workload is the top controller of a set of pods a drain evicts.
type workload struct {
	kind, namespace, name string
	// replicas is spec.replicas of the controller (1 when unset: the API
	// server's default), or the number of pods for a controller not read.
	replicas int32
	// pods are the pods a drain evicts, by name.
	pods []*corev1.Pod
	// rep is the pod of the current template (template()).
	rep *corev1.Pod
}

// clusterIndex is the cluster as the workloads family reads it: indexed
// by namespace, owner and label, so no rule asks the API server again.
type clusterIndex struct {
	nodes map[string]nodeInfo
	// zoneGroups are the node groups of each zone's nodes; zones counts
	// the zones.
	zoneGroups map[string]map[string]bool
	// owners maps a ReplicaSet to its controller, replicas the controllers'
	// spec.replicas (keyed by kind too).
	owners   map[nsName]*metav1.OwnerReference
	revision map[nsName]int64 // a ReplicaSet's deployment.kubernetes.io/revision
	replicas map[string]map[nsName]int32
	services *selectorIndex[*corev1.Service]
	pdbs     *selectorIndex[*policyv1.PodDisruptionBudget]
	// claims maps a PVC to its PV's zone when the PV is zonal.
	claims map[nsName]string
	// endpoints are, per Service, the Ready pods a drain evicts that it
	// selects (indexEndpoints).
	endpoints map[*corev1.Service][]*corev1.Pod
	pods      []corev1.Pod
	evictable int
	excluded  func(namespace string) bool
}

// read lists what the family needs. Nodes, pods and the controllers are
// needed by every rule: without them the family is unknown (the returned
// finding). Services, PDBs and volumes only by some rules: those are then
// not judged.
func (c *workloadsCheck) read(ctx context.Context, cs kubernetes.Interface, nodegroupLabel string) (*clusterIndex, *Finding) {
	fail := func(what string, err error) *Finding {
		return &Finding{Check: FamilyWorkloads, Severity: Unknown, Object: what, Source: "cluster", Message: fmt.Sprintf("listing %s: %v", what, err)}
	}
	ix := &clusterIndex{
		nodes: map[string]nodeInfo{}, zoneGroups: map[string]map[string]bool{},
		owners: map[nsName]*metav1.OwnerReference{}, revision: map[nsName]int64{}, replicas: map[string]map[nsName]int32{"Deployment": {}, "StatefulSet": {}, "ReplicaSet": {}},
		services: newSelectorIndex[*corev1.Service](), pdbs: newSelectorIndex[*policyv1.PodDisruptionBudget](), claims: map[nsName]string{},
		excluded: func(ns string) bool { return slices.Contains(c.policy.ExcludeNamespaces, ns) },
	}
	nodes, err := listAll(ctx, cs.CoreV1().Nodes().List, func(l *corev1.NodeList) []corev1.Node { return l.Items })
	if err != nil {
		return nil, fail("nodes", err)
	}
	for i := range nodes {
		n := &nodes[i]
		ni := nodeInfo{group: NodegroupOf(n, nodegroupLabel), zone: zoneOf(n.Labels)}
		ix.nodes[n.Name] = ni
		if ni.zone != "" {
			if ix.zoneGroups[ni.zone] == nil {
				ix.zoneGroups[ni.zone] = map[string]bool{}
			}
			ix.zoneGroups[ni.zone][ni.group] = true
		}
	}
	if ix.pods, err = listAll(ctx, cs.CoreV1().Pods("").List, func(l *corev1.PodList) []corev1.Pod {
		for i := range l.Items {
			trimPod(&l.Items[i])
		}
		return l.Items
	}); err != nil {
		return nil, fail("pods", err)
	}
	rss, err := listAll(ctx, cs.AppsV1().ReplicaSets("").List, func(l *appsv1.ReplicaSetList) []appsv1.ReplicaSet { return l.Items })
	if err != nil {
		return nil, fail("ReplicaSets", err)
	}
	for i := range rss {
		rs := &rss[i]
		k := nsName{rs.Namespace, rs.Name}
		ix.owners[k] = metav1.GetControllerOf(rs)
		// The Deployment controller numbers its ReplicaSets; the highest
		// is the current template (k8s.io/kubernetes
		// pkg/controller/deployment/util/deployment_util.go RevisionAnnotation).
		if r, err := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64); err == nil {
			ix.revision[k] = r
		}
		ix.replicas["ReplicaSet"][k] = specReplicas(rs.Spec.Replicas)
	}
	deps, err := listAll(ctx, cs.AppsV1().Deployments("").List, func(l *appsv1.DeploymentList) []appsv1.Deployment { return l.Items })
	if err != nil {
		return nil, fail("Deployments", err)
	}
	for i := range deps {
		ix.replicas["Deployment"][nsName{deps[i].Namespace, deps[i].Name}] = specReplicas(deps[i].Spec.Replicas)
	}
	stss, err := listAll(ctx, cs.AppsV1().StatefulSets("").List, func(l *appsv1.StatefulSetList) []appsv1.StatefulSet { return l.Items })
	if err != nil {
		return nil, fail("StatefulSets", err)
	}
	for i := range stss {
		ix.replicas["StatefulSet"][nsName{stss[i].Namespace, stss[i].Name}] = specReplicas(stss[i].Spec.Replicas)
	}
	if svcs, err := listAll(ctx, cs.CoreV1().Services("").List, func(l *corev1.ServiceList) []corev1.Service { return l.Items }); err != nil {
		c.unknown("Services", err, RuleSingleReplicaService, RuleNoReadinessProbe)
	} else {
		for i := range svcs {
			s := &svcs[i]
			// A Service without a selector has no endpoints the
			// EndpointSlice controller manages; an ExternalName one none.
			if len(s.Spec.Selector) == 0 || s.Spec.Type == corev1.ServiceTypeExternalName || ix.excluded(s.Namespace) {
				continue
			}
			ix.services.add(s.Namespace, labels.SelectorFromSet(s.Spec.Selector), s.Spec.Selector, s)
		}
	}
	if pdbs, err := listAll(ctx, cs.PolicyV1().PodDisruptionBudgets("").List, func(l *policyv1.PodDisruptionBudgetList) []policyv1.PodDisruptionBudget { return l.Items }); err != nil {
		c.unknown("PodDisruptionBudgets", err, RuleOneNode, RuleOneZone, RuleNoPDB, RulePDBBlocks)
	} else {
		for i := range pdbs {
			p := &pdbs[i]
			if ix.excluded(p.Namespace) {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil {
				c.out = append(c.out, Finding{Check: FamilyWorkloads, Severity: Unknown, Object: "PDB " + p.Namespace + "/" + p.Name, Source: "cluster",
					Message: fmt.Sprintf("selector: %v; the pods it means to guard are judged without it", err)})
				continue
			}
			// A nil selector is labels.Nothing() (policy/v1): it guards
			// nothing and is left out; an empty one selects every pod of
			// its namespace.
			if p.Spec.Selector != nil {
				ix.pdbs.add(p.Namespace, sel, p.Spec.Selector.MatchLabels, p)
			}
		}
	}
	c.readVolumes(ctx, cs, ix)
	return ix, nil
}

// readVolumes maps each PVC bound to a zonal PV to the PV's zone.
func (c *workloadsCheck) readVolumes(ctx context.Context, cs kubernetes.Interface, ix *clusterIndex) {
	pvs, err := listAll(ctx, cs.CoreV1().PersistentVolumes().List, func(l *corev1.PersistentVolumeList) []corev1.PersistentVolume { return l.Items })
	if err != nil {
		c.unknown("PersistentVolumes", err, RuleZonalVolume)
		return
	}
	zoneOfPV := map[string]string{}
	for i := range pvs {
		if z := pvZone(&pvs[i]); z != "" {
			zoneOfPV[pvs[i].Name] = z
		}
	}
	if len(zoneOfPV) == 0 {
		return
	}
	pvcs, err := listAll(ctx, cs.CoreV1().PersistentVolumeClaims("").List, func(l *corev1.PersistentVolumeClaimList) []corev1.PersistentVolumeClaim { return l.Items })
	if err != nil {
		c.unknown("PersistentVolumeClaims", err, RuleZonalVolume)
		return
	}
	for i := range pvcs {
		if z := zoneOfPV[pvcs[i].Spec.VolumeName]; z != "" {
			ix.claims[nsName{pvcs[i].Namespace, pvcs[i].Name}] = z
		}
	}
}

// pvZone returns the one zone a PV can be attached in: the single value of
// a zone key in its node affinity's required terms, or, for an EBS volume
// (in-tree or CSI) without one, its zone label; "" when it is not zonal or
// spans several zones.
func pvZone(pv *corev1.PersistentVolume) string {
	if na := pv.Spec.NodeAffinity; na != nil && na.Required != nil {
		zones := map[string]bool{}
		for _, t := range na.Required.NodeSelectorTerms {
			for _, e := range t.MatchExpressions {
				if (slices.Contains(zoneKeys, e.Key) || e.Key == ebsZoneKey) && e.Operator == corev1.NodeSelectorOpIn {
					for _, v := range e.Values {
						zones[v] = true
					}
				}
			}
		}
		if len(zones) == 1 {
			for z := range zones {
				return z
			}
		}
		if len(zones) > 1 {
			return ""
		}
	}
	if pv.Spec.AWSElasticBlockStore != nil || (pv.Spec.CSI != nil && pv.Spec.CSI.Driver == "ebs.csi.aws.com") {
		return zoneOf(pv.Labels)
	}
	return ""
}

// specReplicas is spec.replicas, 1 when unset (the API server's default).
func specReplicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// workloads groups the pods a drain evicts by their top controller, in
// namespace and name order.
func (ix *clusterIndex) workloads() []*workload {
	type key struct{ kind, namespace, name string }
	by := map[key]*workload{}
	for i := range ix.pods {
		p := &ix.pods[i]
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || !drainEvicts(p) || ix.excluded(p.Namespace) {
			continue
		}
		kind, name := ix.topController(p)
		if kind == "Job" {
			continue
		}
		ix.evictable++
		k := key{kind, p.Namespace, name}
		w := by[k]
		if w == nil {
			w = &workload{kind: kind, namespace: p.Namespace, name: name}
			by[k] = w
		}
		w.pods = append(w.pods, p)
	}
	out := make([]*workload, 0, len(by))
	for k, w := range by {
		sort.Slice(w.pods, func(i, j int) bool { return w.pods[i].Name < w.pods[j].Name })
		w.rep = ix.current(w.pods)
		w.replicas = int32(len(w.pods))
		if r, ok := ix.replicas[k.kind][nsName{k.namespace, k.name}]; ok {
			w.replicas = r
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.name < b.name
	})
	return out
}

// topController resolves a pod to its top controller by ownerReferences:
// a ReplicaSet to its controller (a Deployment, or another kind such as an
// Argo Rollout), a Job (a CronJob's too) to "Job"; a pod without a
// controller is "Pod" and its own name.
func (ix *clusterIndex) topController(p *corev1.Pod) (kind, name string) {
	ref := metav1.GetControllerOf(p)
	switch {
	case ref == nil:
		return "Pod", p.Name
	case ref.Kind == "ReplicaSet":
		if o := ix.owners[nsName{p.Namespace, ref.Name}]; o != nil {
			return o.Kind, o.Name
		}
	}
	return ref.Kind, ref.Name
}

// selectorIndex finds the objects of a namespace whose label selector
// matches a pod's labels without trying every selector: a selector with
// matchLabels is filed under its first key=value pair (in key order), which
// every pod it matches carries; one without is tried for every pod.
type selectorIndex[T any] struct {
	byPair map[string][]selected[T] // namespace + "\x00" + key=value
	scan   map[string][]selected[T] // namespace
	n      int
}

type selected[T any] struct {
	sel  labels.Selector
	item T
}

func newSelectorIndex[T any]() *selectorIndex[T] {
	return &selectorIndex[T]{byPair: map[string][]selected[T]{}, scan: map[string][]selected[T]{}}
}

func pairKey(namespace, k, v string) string { return namespace + "\x00" + k + "=" + v }

// add files item under its selector; match are the selector's matchLabels.
func (x *selectorIndex[T]) add(namespace string, sel labels.Selector, match map[string]string, item T) {
	x.n++
	s := selected[T]{sel, item}
	if len(match) == 0 {
		x.scan[namespace] = append(x.scan[namespace], s)
		return
	}
	first := ""
	for k := range match {
		if first == "" || k < first {
			first = k
		}
	}
	pk := pairKey(namespace, first, match[first])
	x.byPair[pk] = append(x.byPair[pk], s)
}

// matching returns the items of namespace whose selector matches l.
func (x *selectorIndex[T]) matching(namespace string, l map[string]string) []T {
	var out []T
	set := labels.Set(l)
	for k, v := range l {
		for _, s := range x.byPair[pairKey(namespace, k, v)] {
			if s.sel.Matches(set) {
				out = append(out, s.item)
			}
		}
	}
	for _, s := range x.scan[namespace] {
		if s.sel.Matches(set) {
			out = append(out, s.item)
		}
	}
	return out
}

func (x *selectorIndex[T]) len() int { return x.n }

// joinSorted joins a set's keys in order.
func joinSorted(set map[string]bool) string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// trimPod drops what no rule reads from a listed pod, so that 40,000 pods
// stay small while the family runs: managed fields, annotations but the
// mirror pod's, and the status but its phase and conditions. Rules read
// the spec, labels, owner references, the deletion timestamp, the phase and
// the Ready condition (drainEvicts, podReady).
func trimPod(p *corev1.Pod) {
	p.ManagedFields = nil
	if v, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: v}
	} else {
		p.Annotations = nil
	}
	p.Status = corev1.PodStatus{Phase: p.Status.Phase, Conditions: p.Status.Conditions}
}

// template returns a pod of the workload's current template: mid-rollout,
// one of the new ReplicaSet's, whose template the rules must judge.
func (w *workload) template() *corev1.Pod {
	if w.rep != nil {
		return w.rep
	}
	return w.pods[0]
}

// current picks the pod of the newest template among pods sorted by name:
// the highest ReplicaSet revision, then the latest creation.
func (ix *clusterIndex) current(pods []*corev1.Pod) *corev1.Pod {
	rev := func(p *corev1.Pod) int64 {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.Kind == "ReplicaSet" {
			return ix.revision[nsName{p.Namespace, ref.Name}]
		}
		return 0
	}
	rep := pods[0]
	for _, p := range pods[1:] {
		if r, cur := rev(p), rev(rep); r > cur || (r == cur && rep.CreationTimestamp.Before(&p.CreationTimestamp)) {
			rep = p
		}
	}
	return rep
}

// servicesOf returns every Service that selects any of the workload's
// pods, by name.
func (ix *clusterIndex) servicesOf(w *workload) []*corev1.Service {
	seen := map[*corev1.Service]bool{}
	var out []*corev1.Service
	for _, p := range w.pods {
		for _, s := range ix.services.matching(w.namespace, p.Labels) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// indexEndpoints records, per Service, the Ready pods of the workloads that
// it selects: the endpoints a drain can take away (the EndpointSlice
// controller publishes a pod as ready only while its Ready condition is
// True: k8s.io/endpointslice utils.go podToEndpoint).
func (ix *clusterIndex) indexEndpoints(ws []*workload) {
	ix.endpoints = map[*corev1.Service][]*corev1.Pod{}
	for _, w := range ws {
		for _, p := range w.pods {
			if !podReady(p) {
				continue
			}
			for _, s := range ix.services.matching(w.namespace, p.Labels) {
				ix.endpoints[s] = append(ix.endpoints[s], p)
			}
		}
	}
}
