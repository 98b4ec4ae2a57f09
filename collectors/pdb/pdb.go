// Package pdb is the PodDisruptionBudget and drain-headroom collector: the
// budgets' status, budgets that can never allow an eviction, and per node
// what a drain would meet - the pods it would evict, those it would delete
// for good or lose data of, and those the Eviction API would refuse.
package pdb

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/cache"

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
type Collector struct {
	nodes, pods, pdbs *kube.Informer

	// mu guards the selector cache, shared by concurrent scrapes.
	mu        sync.Mutex
	selectors map[pdbKey]*cachedSelector
	scrape    uint64
}

type pdbKey struct{ namespace, name string }

// cachedSelector is a PDB's parsed selector, valid while the PDB keeps its
// resourceVersion.
type cachedSelector struct {
	resourceVersion string
	selector        labels.Selector // nil when it matches nothing
	err             error
	// required lists the selector's requirements that a label equal one of
	// some values, by which the PDB is found from a pod's labels.
	required []requiredLabel
	seen     uint64 // scrape that last saw the PDB; older entries are pruned
}

type requiredLabel struct {
	key    string
	values []string
}

// New returns a collector reading the given shared informers: the pod
// informer must carry the kube.PodNodeIndex index and the PDB informer the
// cache.NamespaceIndex index, as kube.Informers provides them.
func New(nodes, pods, pdbs *kube.Informer) *Collector {
	return &Collector{nodes: nodes, pods: pods, pdbs: pdbs, selectors: map[pdbKey]*cachedSelector{}}
}

// budget is one PDB during one scrape, with the counts of the node being
// computed.
type budget struct {
	pdb *policyv1.PodDisruptionBudget
	sel *cachedSelector

	// consuming counts the node's pods whose eviction would have to take one
	// of the budget's disruptionsAllowed; multi those refused outright
	// because other PDBs select them too.
	consuming, multi int32
	touched          bool
}

// namespaceBudgets are the PDBs of one namespace, indexed so that a pod is
// matched against the few whose selector could select it, not against all of
// them: a PDB whose selector requires a label to equal one of some values is
// listed under that label and those values, the others are tried on every pod.
type namespaceBudgets struct {
	budgets []budget
	byLabel []labelIndex
	always  []*budget
}

// labelIndex lists budgets by the value their selector requires of one label.
type labelIndex struct {
	key     string
	byValue map[string][]*budget
}

func newNamespaceBudgets(budgets []budget) *namespaceBudgets {
	nb := &namespaceBudgets{budgets: budgets}
	for i := range budgets {
		b := &budgets[i]
		if b.sel.selector == nil {
			continue
		}
		if len(b.sel.required) == 0 {
			nb.always = append(nb.always, b)
			continue
		}
		// Prefer a label already indexed: fewer lookups per pod.
		req, idx := b.sel.required[0], -1
	search:
		for _, r := range b.sel.required {
			for i := range nb.byLabel {
				if nb.byLabel[i].key == r.key {
					req, idx = r, i
					break search
				}
			}
		}
		if idx < 0 {
			idx = len(nb.byLabel)
			nb.byLabel = append(nb.byLabel, labelIndex{key: req.key, byValue: map[string][]*budget{}})
		}
		for _, v := range req.values {
			nb.byLabel[idx].byValue[v] = append(nb.byLabel[idx].byValue[v], b)
		}
	}
	return nb
}

// match appends to matched the budgets whose selector selects the pod.
func (nb *namespaceBudgets) match(pod *kube.Pod, matched []*budget) []*budget {
	set := labels.Set(pod.Labels)
	for i := range nb.byLabel {
		v, ok := pod.Labels[nb.byLabel[i].key]
		if !ok {
			continue
		}
		for _, b := range nb.byLabel[i].byValue[v] {
			if b.sel.selector.Matches(set) {
				matched = append(matched, b)
			}
		}
	}
	for _, b := range nb.always {
		if b.sel.selector.Matches(set) {
			matched = append(matched, b)
		}
	}
	return matched
}

// Update sends the PDB and node metrics computed from the informers' caches.
// It returns an error when an informer is unhealthy (the metrics then show
// its last state) or a PDB's selector cannot be parsed.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	var errs []error
	for _, inf := range [...]*kube.Informer{c.nodes, c.pods, c.pdbs} {
		if err := inf.Healthy(); err != nil {
			errs = append(errs, err)
		}
	}

	byNamespace, budgetErrs := c.budgets()
	errs = append(errs, budgetErrs...)
	for _, nb := range byNamespace {
		for i := range nb.budgets {
			sendBudget(ch, nb.budgets[i].pdb)
		}
	}

	podIndex := c.pods.GetIndexer()
	var scratch nodeScratch
	for _, obj := range c.nodes.GetStore().List() {
		node, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		pods, err := podIndex.ByIndex(kube.PodNodeIndex, node.Name)
		if err != nil {
			// Only when the index is missing: the same for every node.
			return errors.Join(append(errs, fmt.Errorf("listing the pods of node %s: %w", node.Name, err))...)
		}
		scratch.send(ch, node.Name, pods, byNamespace)
	}
	return errors.Join(errs...)
}

// budgets returns the PDBs grouped by namespace, read through the PDB
// informer's namespace index, with their selectors parsed or taken from the
// cache. A PDB whose selector cannot be parsed is kept for its own metrics but
// matches no pod, which is also what the Eviction API does with it
// (getPodDisruptionBudgets in eviction.go skips it); since it cannot tell
// which pods the PDB was meant to guard, it is reported as an error.
func (c *Collector) budgets() (map[string]*namespaceBudgets, []error) {
	indexer := c.pdbs.GetIndexer()
	namespaces := indexer.ListIndexFuncValues(cache.NamespaceIndex)
	byNamespace := make(map[string]*namespaceBudgets, len(namespaces))
	var errs []error

	c.mu.Lock()
	defer c.mu.Unlock()
	c.scrape++
	for _, ns := range namespaces {
		objs, err := indexer.ByIndex(cache.NamespaceIndex, ns)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the PodDisruptionBudgets of namespace %s: %w", ns, err))
			continue
		}
		budgets := make([]budget, 0, len(objs))
		for _, obj := range objs {
			pdb, ok := obj.(*policyv1.PodDisruptionBudget)
			if !ok {
				continue
			}
			sel := c.selector(pdb)
			if sel.err != nil {
				errs = append(errs, fmt.Errorf("parsing the selector of PodDisruptionBudget %s/%s, counted as matching no pod as the Eviction API does: %w",
					pdb.Namespace, pdb.Name, sel.err))
			}
			budgets = append(budgets, budget{pdb: pdb, sel: sel})
		}
		if len(budgets) > 0 {
			byNamespace[ns] = newNamespaceBudgets(budgets)
		}
	}
	for k, s := range c.selectors {
		if s.seen != c.scrape {
			delete(c.selectors, k)
		}
	}
	return byNamespace, errs
}

// selector returns the PDB's parsed selector; c.mu must be held. Apart from
// seen, which only changes under c.mu, an entry is never modified once built,
// so a scrape reads it after unlocking.
func (c *Collector) selector(pdb *policyv1.PodDisruptionBudget) *cachedSelector {
	key := pdbKey{pdb.Namespace, pdb.Name}
	s, ok := c.selectors[key]
	if !ok || s.resourceVersion != pdb.ResourceVersion {
		s = parseSelector(pdb)
		c.selectors[key] = s
	}
	s.seen = c.scrape
	return s
}

func parseSelector(pdb *policyv1.PodDisruptionBudget) *cachedSelector {
	s := &cachedSelector{resourceVersion: pdb.ResourceVersion}
	// A nil selector gives labels.Nothing() and an empty one
	// labels.Everything(), the policy/v1 semantics.
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		s.err = err
		return s
	}
	reqs, selectable := sel.Requirements()
	if !selectable { // labels.Nothing()
		return s
	}
	s.selector = sel
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			s.required = append(s.required, requiredLabel{key: r.Key(), values: r.ValuesUnsorted()})
		}
	}
	return s
}

func sendBudget(ch chan<- prometheus.Metric, pdb *policyv1.PodDisruptionBudget) {
	ns, name := pdb.Namespace, pdb.Name
	ch <- prometheus.MustNewConstMetric(disruptionsAllowedDesc, prometheus.GaugeValue, float64(pdb.Status.DisruptionsAllowed), ns, name)
	ch <- prometheus.MustNewConstMetric(expectedPodsDesc, prometheus.GaugeValue, float64(pdb.Status.ExpectedPods), ns, name)
	ch <- prometheus.MustNewConstMetric(currentHealthyDesc, prometheus.GaugeValue, float64(pdb.Status.CurrentHealthy), ns, name)
	ch <- prometheus.MustNewConstMetric(desiredHealthyDesc, prometheus.GaugeValue, float64(pdb.Status.DesiredHealthy), ns, name)
	ch <- prometheus.MustNewConstMetric(unsatisfiableDesc, prometheus.GaugeValue, collectors.BoolFloat(unsatisfiable(pdb)), ns, name)
}

// nodeScratch holds the buffers reused from one node to the next.
type nodeScratch struct {
	matched []*budget
	touched []*budget
}

// send computes and sends one node's metrics from its pods.
func (s *nodeScratch) send(ch chan<- prometheus.Metric, node string, pods []any, byNamespace map[string]*namespaceBudgets) {
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
		nb := byNamespace[pod.Namespace]
		if nb == nil {
			continue
		}
		s.matched = nb.match(pod, s.matched[:0])
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
				ch <- prometheus.MustNewConstMetric(drainBlockedPodsDesc, prometheus.GaugeValue, float64(n), node, b.pdb.Namespace, b.pdb.Name, Reasons[i])
			}
		}
		b.consuming, b.multi, b.touched = 0, 0, false
	}
	ch <- prometheus.MustNewConstMetric(evictablePodsDesc, prometheus.GaugeValue, float64(evictable), node)
	ch <- prometheus.MustNewConstMetric(unmanagedPodsDesc, prometheus.GaugeValue, float64(unmanaged), node)
	ch <- prometheus.MustNewConstMetric(localStoragePodsDesc, prometheus.GaugeValue, float64(localStorage), node)
	ch <- prometheus.MustNewConstMetric(drainableDesc, prometheus.GaugeValue, collectors.BoolFloat(drainable), node)
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
