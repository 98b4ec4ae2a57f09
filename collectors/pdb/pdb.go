// Package pdb is the PodDisruptionBudget and drain-headroom collector: the
// budgets' status, budgets that can never allow an eviction, and per node
// what a drain would meet - the pods it would evict, those it would delete
// for good or lose data of, and those the Eviction API would refuse.
package pdb

import (
	"errors"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

var (
	pdbLabels = []string{"namespace", "pdb"}

	disruptionsAllowedDesc = prometheus.NewDesc("upgradeguard_pdb_disruptions_allowed",
		"Pod disruptions the PodDisruptionBudget allows now, from its status.",
		pdbLabels, nil)
	expectedPodsDesc = prometheus.NewDesc("upgradeguard_pdb_expected_pods",
		"Pods the PodDisruptionBudget expects to exist, from its status.",
		pdbLabels, nil)
	currentHealthyDesc = prometheus.NewDesc("upgradeguard_pdb_current_healthy",
		"Healthy pods the PodDisruptionBudget counts now, from its status.",
		pdbLabels, nil)
	desiredHealthyDesc = prometheus.NewDesc("upgradeguard_pdb_desired_healthy",
		"Healthy pods the PodDisruptionBudget requires, from its status.",
		pdbLabels, nil)
	unsatisfiableDesc = prometheus.NewDesc("upgradeguard_pdb_unsatisfiable",
		"Whether the PodDisruptionBudget's spec can never allow an eviction at the expected number of pods (1) or can (0).",
		pdbLabels, nil)

	evictablePodsDesc = prometheus.NewDesc("upgradeguard_node_evictable_pods",
		"Pods a drain of the node would evict: all but DaemonSet pods, mirror pods and finished pods.",
		[]string{"node"}, nil)
	unmanagedPodsDesc = prometheus.NewDesc("upgradeguard_node_unmanaged_pods",
		"Pods a drain of the node would evict that have no controller, so are deleted for good.",
		[]string{"node"}, nil)
	localStoragePodsDesc = prometheus.NewDesc("upgradeguard_node_local_storage_pods",
		"Pods a drain of the node would evict that have an emptyDir volume, whose data is lost.",
		[]string{"node"}, nil)
	drainBlockedPodsDesc = prometheus.NewDesc("upgradeguard_node_drain_blocked_pods",
		"Pods on the node the Eviction API would refuse now because of the PodDisruptionBudget, were the node drained alone, by reason: budget_exhausted (the budget allows fewer disruptions than the pods need), multiple_pdbs (more than one PodDisruptionBudget selects the pod), status_stale (the budget's status lags its spec).",
		[]string{"node", "namespace", "pdb", "reason"}, nil)
	drainableDesc = prometheus.NewDesc("upgradeguard_node_drainable",
		"Whether the Eviction API would accept every pod a drain of the node evicts (1) or a PodDisruptionBudget refuses one (0).",
		[]string{"node"}, nil)
)

// Collector exports PodDisruptionBudgets and per-node drain headroom from the
// node, pod and PDB informers. It never calls the API server. Which pods the
// Eviction API would refuse follows the rules described in eviction.go.
//
// The metrics are kept rendered, per PDB and per node, and recomputed only
// where an informer event may have changed them (state.go): a pod event
// touches its node, a PDB event the nodes holding the pods it selected (and,
// when its selector changes, the nodes holding pods of its namespace), a node
// event that node. A scrape first recomputes what the events since the last
// scrape touched, then sends what is rendered; concurrent scrapes share that
// work under mu.
type Collector struct {
	nodes, pods, pdbs *kube.Informer
	nodesOnly         bool

	// dirtyMu guards what the event handlers mark for recomputation, apart
	// from mu so that a handler never waits for a scrape's computation.
	dirtyMu    sync.Mutex
	dirtyNodes map[string]struct{}
	dirtyPDBs  map[string]struct{} // store keys, namespace/name
	handlerErr error

	// mu guards the state below, read and written by scrapes only.
	mu sync.Mutex
	// built tells whether the state was built once from the whole stores.
	built bool
	// selectors are the parsed selectors of the PDBs held.
	selectors  map[pdbKey]*cachedSelector
	budgets    map[pdbKey]*budget
	namespaces map[string]*namespaceBudgets
	nodeStates map[string]*nodeState
	scratch    nodeScratch
	series     int // sent by the last scrape, to size the next one's slice
}

// Option changes what New's collector sends.
type Option func(*Collector)

// NodesOnly leaves out the PodDisruptionBudgets' own series
// (upgradeguard_pdb_*), for every shard of a sharded exporter but shard 0:
// they are cluster-wide, and each shard still reads every PDB to match its
// nodes' pods.
func NodesOnly() Option { return func(c *Collector) { c.nodesOnly = true } }

// New returns a collector reading the given shared informers: the pod
// informer must carry the kube.PodNodeIndex index, as kube.Informers provides
// it. It registers event handlers on the three informers.
func New(nodes, pods, pdbs *kube.Informer, opts ...Option) *Collector {
	c := newCollector(nodes, pods, pdbs)
	for _, o := range opts {
		o(c)
	}
	c.handlerErr = errors.Join(
		register(nodes, c.nodeEvent),
		register(pods, c.podEvent),
		register(pdbs, c.pdbEvent))
	return c
}

// newCollector returns a collector without event handlers: its first scrape
// computes everything from the stores, later ones recompute only what was
// marked.
func newCollector(nodes, pods, pdbs *kube.Informer) *Collector {
	return &Collector{
		nodes: nodes, pods: pods, pdbs: pdbs,
		dirtyNodes: map[string]struct{}{}, dirtyPDBs: map[string]struct{}{},
		selectors: map[pdbKey]*cachedSelector{}, budgets: map[pdbKey]*budget{},
		namespaces: map[string]*namespaceBudgets{}, nodeStates: map[string]*nodeState{},
	}
}

// budget is a PDB as the collector holds it, with its rendered series and
// the counts of the node being computed.
type budget struct {
	pdb    *policyv1.PodDisruptionBudget
	sel    *cachedSelector
	series []series
	// nodes are those whose last computation matched one of their pods to
	// the PDB: the nodes a change of its status or spec touches.
	nodes map[string]struct{}

	// consuming counts the node's pods whose eviction would have to take one
	// of the budget's disruptionsAllowed; multi those refused outright
	// because other PDBs select them too.
	consuming, multi int32
	touched, listed  bool
}

// nodeState is a node's rendered series and what they were computed from.
type nodeState struct {
	series  []series
	budgets []*budget // that matched one of its pods
	// namespaces of its pods that reached the PDB match: a new selector in
	// one of them may change the node's series. Found by a pass over the
	// nodes when selectors change, rather than indexed: a map of nodes per
	// namespace was 7 MiB at kubetest.Production.
	namespaces []string
}

// Update sends the PDB and node metrics, recomputing first what informer
// events changed since the last scrape. It returns an error when an
// informer is unhealthy (the metrics then show its last state) or a PDB's
// selector cannot be parsed.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	var errs []error
	for _, inf := range [...]*kube.Informer{c.nodes, c.pods, c.pdbs} {
		if err := inf.Healthy(); err != nil {
			errs = append(errs, err)
		}
	}
	metrics, refreshErrs := c.refresh()
	for _, m := range metrics {
		ch <- m
	}
	return errors.Join(append(errs, refreshErrs...)...)
}

func budgetSeries(pdb *policyv1.PodDisruptionBudget) []series {
	values := []string{pdb.Namespace, pdb.Name}
	return []series{
		{disruptionsAllowedDesc, float64(pdb.Status.DisruptionsAllowed), values, budgetLabels},
		{expectedPodsDesc, float64(pdb.Status.ExpectedPods), values, budgetLabels},
		{currentHealthyDesc, float64(pdb.Status.CurrentHealthy), values, budgetLabels},
		{desiredHealthyDesc, float64(pdb.Status.DesiredHealthy), values, budgetLabels},
		{unsatisfiableDesc, collectors.BoolFloat(unsatisfiable(pdb)), values, budgetLabels},
	}
}

// nodeScratch holds the buffers reused from one node to the next.
type nodeScratch struct {
	matched []*budget
	touched []*budget
}

// compute returns one node's state from its pods, matched against the
// namespaces' budgets.
func (s *nodeScratch) compute(node string, pods []any, byNamespace map[string]*namespaceBudgets) *nodeState {
	st := &nodeState{}
	var evictable, unmanaged, localStorage int
	s.touched = s.touched[:0]
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
		if !slices.Contains(st.namespaces, pod.Namespace) {
			st.namespaces = append(st.namespaces, pod.Namespace)
		}
		nb := byNamespace[pod.Namespace]
		if nb == nil {
			continue
		}
		s.matched = nb.match(pod, s.matched[:0])
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
				st.series = append(st.series, series{drainBlockedPodsDesc, float64(n),
					[]string{b.pdb.Namespace, node, b.pdb.Name, Reasons[i]}, blockedLabels})
			}
		}
		b.consuming, b.multi, b.touched = 0, 0, false
	}
	for _, b := range st.budgets {
		b.listed = false
	}
	values := []string{node}
	st.series = append(st.series,
		series{evictablePodsDesc, float64(evictable), values, nodeLabels},
		series{unmanagedPodsDesc, float64(unmanaged), values, nodeLabels},
		series{localStoragePodsDesc, float64(localStorage), values, nodeLabels},
		series{drainableDesc, collectors.BoolFloat(drainable), values, nodeLabels})
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
