// Package pdb is the PodDisruptionBudget and drain-headroom collector: the
// budgets' status, budgets that can never allow an eviction, and per node
// what a drain would meet - the pods it would evict, those it would delete
// for good or lose data of, and those the Eviction API would refuse.
package pdb

import (
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

var (
	pdbLabels = []string{"namespace", "pdb"}

	disruptionsAllowedFamily = &metricstore.Family{Name: "upgradeguard_pdb_disruptions_allowed",
		Help: "Pod disruptions the PodDisruptionBudget allows now, from its status.",
		Type: metricstore.Gauge, LabelNames: pdbLabels}
	expectedPodsFamily = &metricstore.Family{Name: "upgradeguard_pdb_expected_pods",
		Help: "Pods the PodDisruptionBudget expects to exist, from its status.",
		Type: metricstore.Gauge, LabelNames: pdbLabels}
	currentHealthyFamily = &metricstore.Family{Name: "upgradeguard_pdb_current_healthy",
		Help: "Healthy pods the PodDisruptionBudget counts now, from its status.",
		Type: metricstore.Gauge, LabelNames: pdbLabels}
	desiredHealthyFamily = &metricstore.Family{Name: "upgradeguard_pdb_desired_healthy",
		Help: "Healthy pods the PodDisruptionBudget requires, from its status.",
		Type: metricstore.Gauge, LabelNames: pdbLabels}
	unsatisfiableFamily = &metricstore.Family{Name: "upgradeguard_pdb_unsatisfiable",
		Help: "Whether the PodDisruptionBudget's spec can never allow an eviction at the expected number of pods (1) or can (0).",
		Type: metricstore.Gauge, LabelNames: pdbLabels}

	gateHoldFamily = &metricstore.Family{Name: "upgradeguard_pdb_gate_hold",
		Help: "1 for a PodDisruptionBudget of upgradeguard gate hold's pods (its selector requires both app.kubernetes.io/name=upgradeguard and app.kubernetes.io/component=hold), which are ready only while the gate says GO: the gate sets it aside. No series for other budgets.",
		Type: metricstore.Gauge, LabelNames: pdbLabels}

	evictablePodsFamily = &metricstore.Family{Name: "upgradeguard_node_evictable_pods",
		Help: "Pods a drain of the node would evict: all but DaemonSet pods, mirror pods and finished pods.",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	unmanagedPodsFamily = &metricstore.Family{Name: "upgradeguard_node_unmanaged_pods",
		Help: "Pods a drain of the node would evict that have no controller, so are deleted for good.",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	localStoragePodsFamily = &metricstore.Family{Name: "upgradeguard_node_local_storage_pods",
		Help: "Pods a drain of the node would evict that have an emptyDir volume, whose data is lost.",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	// The label names are in the order client_golang wrote them, sorted.
	drainBlockedPodsFamily = &metricstore.Family{Name: "upgradeguard_node_drain_blocked_pods",
		Help: "Pods on the node the Eviction API would refuse now because of the PodDisruptionBudget, were the node drained alone, by reason: budget_exhausted (the budget allows fewer disruptions than the pods need), multiple_pdbs (more than one PodDisruptionBudget selects the pod), status_stale (the budget's status lags its spec).",
		Type: metricstore.Gauge, LabelNames: []string{"namespace", "node", "pdb", "reason"}}
	drainableFamily = &metricstore.Family{Name: "upgradeguard_node_drainable",
		Help: "Whether the Eviction API would accept every pod a drain of the node evicts (1) or a PodDisruptionBudget refuses one (0).",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}

	// pdbFamilies are kept per PDB, nodeFamilies per node, each in the
	// order written.
	pdbFamilies = []*metricstore.Family{
		disruptionsAllowedFamily, expectedPodsFamily, currentHealthyFamily, desiredHealthyFamily, unsatisfiableFamily,
		gateHoldFamily,
	}
	nodeFamilies = []*metricstore.Family{
		evictablePodsFamily, unmanagedPodsFamily, localStoragePodsFamily, drainBlockedPodsFamily, drainableFamily,
	}
)

// Collector exports PodDisruptionBudgets and per-node drain headroom from the
// node, pod and PDB informers. It never calls the API server. Which pods the
// Eviction API would refuse follows the rules described in eviction.go.
//
// The metrics are kept rendered in the text exposition format, per PDB and
// per node (metricstore.Store), and recomputed only where an informer event
// may have changed them (state.go): a pod event touches its node, a PDB
// event the nodes holding the pods it selected (and, when its selector
// changes, the nodes holding pods of its namespace), a node event that node.
// A scrape's Update recomputes what the events since the last scrape
// touched, concurrent scrapes sharing that work under mu; WriteMetrics then
// writes the rendered bytes.
type Collector struct {
	nodes, pods, pdbs *kube.Informer
	nodesOnly         bool
	constLabels       string

	// dirtyMu guards what the event handlers mark for recomputation, apart
	// from mu so that a handler never waits for a scrape's computation.
	dirtyMu    sync.Mutex
	dirtyNodes map[string]struct{}
	dirtyPDBs  map[string]struct{} // store keys, namespace/name
	handlerErr error

	// pdbSeries holds each PDB's series under its store key (none with
	// NodesOnly), nodeSeries each node's under its name. They lock
	// themselves: WriteMetrics reads them without mu.
	pdbSeries, nodeSeries *metricstore.Store

	// mu guards the state below, read and written by Update only.
	mu sync.Mutex
	// built tells whether the state was built once from the whole stores.
	built bool
	// selectors are the parsed selectors of the PDBs held.
	selectors  map[pdbKey]*cachedSelector
	budgets    map[pdbKey]*budget
	namespaces map[string]*namespaceBudgets
	nodeStates map[string]*nodeState
	scratch    nodeScratch
}

// Option changes what New's collector writes.
type Option func(*Collector)

// NodesOnly leaves out the PodDisruptionBudgets' own series
// (upgradeguard_pdb_*), for every shard of a sharded exporter but shard 0:
// they are cluster-wide, and each shard still reads every PDB to match its
// nodes' pods.
func NodesOnly() Option { return func(c *Collector) { c.nodesOnly = true } }

// ConstLabels ends every series with labels, as metricstore.ConstLabels
// renders them (`,cluster="prod"`), e.g. the exporter's --cluster.
func ConstLabels(labels string) Option { return func(c *Collector) { c.constLabels = labels } }

// New returns a collector reading the given shared informers: the pod
// informer must carry the kube.PodNodeIndex index, as kube.Informers provides
// it. It registers event handlers on the three informers.
func New(nodes, pods, pdbs *kube.Informer, opts ...Option) *Collector {
	c := newCollector(nodes, pods, pdbs, opts...)
	c.handlerErr = errors.Join(
		register(nodes, c.nodeEvent),
		register(pods, c.podEvent),
		register(pdbs, c.pdbEvent))
	return c
}

// newCollector returns a collector without event handlers: its first scrape
// computes everything from the stores, later ones recompute only what was
// marked.
func newCollector(nodes, pods, pdbs *kube.Informer, opts ...Option) *Collector {
	c := &Collector{
		nodes: nodes, pods: pods, pdbs: pdbs,
		dirtyNodes: map[string]struct{}{}, dirtyPDBs: map[string]struct{}{},
		selectors: map[pdbKey]*cachedSelector{}, budgets: map[pdbKey]*budget{},
		namespaces: map[string]*namespaceBudgets{}, nodeStates: map[string]*nodeState{},
	}
	for _, o := range opts {
		o(c)
	}
	c.pdbSeries = metricstore.NewStore(c.constLabels, pdbFamilies...)
	c.nodeSeries = metricstore.NewStore(c.constLabels, nodeFamilies...)
	return c
}

// budget is a PDB as the collector holds it, with the counts of the node
// being computed.
type budget struct {
	pdb *policyv1.PodDisruptionBudget
	sel *cachedSelector

	// consuming counts the node's pods whose eviction would have to take one
	// of the budget's disruptionsAllowed; multi those refused outright
	// because other PDBs select them too.
	consuming, multi int32
	touched, listed  bool
	// changed marks the budget while the nodes it touches are looked for.
	changed bool
}

// nodeState is what a node's series were computed from; the series
// themselves are in Collector.nodeSeries.
type nodeState struct {
	// budgets matched one of its pods: a change of their status or spec
	// may change the node's series.
	budgets []*budget
	// unmatched are the namespaces of its pods that reached the PDB match
	// and matched no budget, when no other pod of the namespace did: a new
	// selector there may select them. Usually none.
	unmatched []string
}

// touchedBy tells whether a budget the node matched is marked changed or
// one of its unmatched namespaces is among namespaces.
func (st *nodeState) touchedBy(namespaces map[string]struct{}) bool {
	for _, b := range st.budgets {
		if b.changed {
			return true
		}
	}
	for _, ns := range st.unmatched {
		if _, ok := namespaces[ns]; ok {
			return true
		}
	}
	return false
}

// Update recomputes what informer events changed since the last scrape,
// and sends nothing: WriteMetrics writes the series. It returns an error
// when an informer is unhealthy (the metrics then show its last state) or a
// PDB's selector cannot be parsed.
func (c *Collector) Update(chan<- prometheus.Metric) error {
	var errs []error
	for _, inf := range [...]*kube.Informer{c.nodes, c.pods, c.pdbs} {
		if err := inf.Healthy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, c.refresh()...)...)
}

// WriteMetrics implements metricstore.Writer: the PDBs' families (unless
// NodesOnly), then the nodes', as last computed. Each node's and each
// PDB's series are written as one computation left them; a computation
// running meanwhile for another scrape may have reached some of them and
// not yet others, as with kube-state-metrics' stores.
func (c *Collector) WriteMetrics(w io.Writer) error {
	if !c.nodesOnly {
		if err := c.pdbSeries.WriteMetrics(w); err != nil {
			return err
		}
	}
	return c.nodeSeries.WriteMetrics(w)
}

// renderBudget renders a PDB's series.
func renderBudget(b *metricstore.Builder, pdb *policyv1.PodDisruptionBudget) {
	b.Add(disruptionsAllowedFamily, float64(pdb.Status.DisruptionsAllowed), pdb.Namespace, pdb.Name)
	b.Add(expectedPodsFamily, float64(pdb.Status.ExpectedPods), pdb.Namespace, pdb.Name)
	b.Add(currentHealthyFamily, float64(pdb.Status.CurrentHealthy), pdb.Namespace, pdb.Name)
	b.Add(desiredHealthyFamily, float64(pdb.Status.DesiredHealthy), pdb.Namespace, pdb.Name)
	b.Add(unsatisfiableFamily, collectors.BoolFloat(unsatisfiable(pdb)), pdb.Namespace, pdb.Name)
	if kube.SelectsOnlyGateHold(pdb.Spec.Selector) {
		b.Add(gateHoldFamily, 1, pdb.Namespace, pdb.Name)
	}
}

// nodeScratch holds the buffers reused from one node to the next.
type nodeScratch struct {
	matched   []*budget
	touched   []*budget
	unmatched []string
}

// compute renders one node's series from its pods, matched against the
// namespaces' budgets, into out, and returns what they were computed from.
func (s *nodeScratch) compute(node string, pods []any, byNamespace map[string]*namespaceBudgets, out *metricstore.Builder) *nodeState {
	st := &nodeState{}
	var evictable, unmanaged, localStorage int
	s.touched, s.unmatched = s.touched[:0], s.unmatched[:0]
	for _, obj := range pods {
		pod, ok := obj.(*kube.Pod)
		if !ok {
			continue
		}
		if !drainEvicts(pod) {
			continue
		}
		evictable++
		if !pod.HasController {
			unmanaged++
		}
		if pod.HasEmptyDir {
			localStorage++
		}
		if canIgnorePDB(pod) {
			continue
		}
		s.matched = s.matched[:0]
		if nb := byNamespace[pod.Namespace]; nb != nil {
			s.matched = nb.match(pod, s.matched)
		}
		if len(s.matched) == 0 && !slices.Contains(s.unmatched, pod.Namespace) {
			s.unmatched = append(s.unmatched, pod.Namespace)
		}
		for _, b := range s.matched {
			if !b.listed {
				b.listed = true
				st.budgets = append(st.budgets, b)
			}
		}
		switch len(s.matched) {
		case 0:
		case 1:
			if b := s.matched[0]; needsBudget(pod, b.pdb) {
				s.touch(b)
				b.consuming++
			}
		default:
			for _, b := range s.matched {
				s.touch(b)
				b.multi++
			}
		}
	}

	drainable := true
	for _, b := range s.touched {
		for i, n := range b.refused() {
			if n > 0 {
				drainable = false
				out.Add(drainBlockedPodsFamily, float64(n), b.pdb.Namespace, node, b.pdb.Name, Reasons[i])
			}
		}
		b.consuming, b.multi, b.touched = 0, 0, false
	}
	for _, b := range st.budgets {
		b.listed = false
	}
	for _, ns := range s.unmatched {
		if !slices.ContainsFunc(st.budgets, func(b *budget) bool { return b.pdb.Namespace == ns }) {
			st.unmatched = append(st.unmatched, ns)
		}
	}
	out.Add(evictablePodsFamily, float64(evictable), node)
	out.Add(unmanagedPodsFamily, float64(unmanaged), node)
	out.Add(localStoragePodsFamily, float64(localStorage), node)
	out.Add(drainableFamily, collectors.BoolFloat(drainable), node)
	return st
}

func (s *nodeScratch) touch(b *budget) {
	if !b.touched {
		b.touched = true
		s.touched = append(s.touched, b)
	}
}

// drainEvicts tells whether a drain evicts the pod: kubectl drain leaves
// DaemonSet pods (their controller would recreate them in place) and mirror
// pods (the kubelet owns them) alone, and finished pods hold nothing.
func drainEvicts(pod *kube.Pod) bool {
	if pod.Phase == corev1.PodSucceeded || pod.Phase == corev1.PodFailed || pod.Mirror {
		return false
	}
	return !pod.HasController || pod.ControllerKind != "DaemonSet"
}
