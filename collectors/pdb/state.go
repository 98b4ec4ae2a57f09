package pdb

import (
	"fmt"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"

	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

// The collector's state follows the informers' events the way
// kube-state-metrics' pkg/metrics_store does: a node's and a PDB's series
// are rendered from the informers' stores and kept until an event touches
// them. Handlers only mark what an event touches; the next scrape
// recomputes it from the stores, so what a scrape shows is always what a
// computation from scratch over the stores would show, once every event
// already in the stores has reached its handler. A relist (the informer's
// Replace) arrives as updates of the listed objects followed by deletions of
// the others, so a scrape during one never shows an empty or half cluster.

// register adds handler for every add, update and delete of inf.
func register(inf *kube.Informer, handler func(oldObj, newObj any)) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { handler(nil, obj) },
		UpdateFunc: handler,
		DeleteFunc: func(obj any) { handler(obj, nil) },
	})
	if err != nil {
		return fmt.Errorf("watching the %s informer's events: %w", inf.Name(), err)
	}
	return nil
}

// nodeEvent marks the node recomputed: it comes or goes. Its fields do not
// enter the series.
func (c *Collector) nodeEvent(oldObj, newObj any) {
	if oldObj != nil && newObj != nil {
		return
	}
	obj := newObj
	if obj == nil {
		obj = oldObj
	}
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.dirtyMu.Lock()
	c.dirtyNodes[key] = struct{}{}
	c.dirtyMu.Unlock()
}

// podEvent marks the node the pod was and is on.
func (c *Collector) podEvent(oldObj, newObj any) {
	c.dirtyMu.Lock()
	defer c.dirtyMu.Unlock()
	for _, obj := range [...]any{oldObj, newObj} {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if pod, ok := obj.(*kube.Pod); ok {
			if n := pod.NodeName(); n != "" {
				c.dirtyNodes[n] = struct{}{}
			}
		}
	}
}

// pdbEvent marks the PDB; the scrape works out which nodes it touches.
func (c *Collector) pdbEvent(oldObj, newObj any) {
	obj := newObj
	if obj == nil {
		obj = oldObj
	}
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.dirtyMu.Lock()
	c.dirtyPDBs[key] = struct{}{}
	c.dirtyMu.Unlock()
}

// refresh recomputes and renders what was marked since the last scrape
// (everything on the first) and returns the errors of PDBs whose selector
// does not parse and of nodes that could not be recomputed.
func (c *Collector) refresh() []error {
	c.dirtyMu.Lock()
	nodes, pdbs := c.dirtyNodes, c.dirtyPDBs
	c.dirtyNodes, c.dirtyPDBs = map[string]struct{}{}, map[string]struct{}{}
	handlerErr := c.handlerErr
	c.dirtyMu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if handlerErr != nil {
		errs = append(errs, handlerErr)
	}
	if !c.built {
		for _, k := range c.nodes.GetStore().ListKeys() {
			nodes[k] = struct{}{}
		}
		for _, k := range c.pdbs.GetStore().ListKeys() {
			pdbs[k] = struct{}{}
		}
		c.built = true
	}

	namespaces := map[string]struct{}{}
	var changed []*budget
	for key := range pdbs {
		changed = c.refreshBudget(key, namespaces, changed)
	}
	c.reindex(namespaces)
	c.markNodes(changed, namespaces, nodes)
	podIndex := c.pods.GetIndexer()
	for name := range nodes {
		if err := c.refreshNode(name, podIndex); err != nil {
			errs = append(errs, err)
			c.dirtyMu.Lock()
			c.dirtyNodes[name] = struct{}{} // retried on the next scrape
			c.dirtyMu.Unlock()
		}
	}

	for k, b := range c.budgets {
		if b.sel.err != nil {
			errs = append(errs, fmt.Errorf("parsing the selector of PodDisruptionBudget %s/%s, counted as matching no pod as the Eviction API does: %w",
				k.namespace, k.name, b.sel.err))
		}
	}
	return errs
}

// refreshBudget takes the PDB stored under key into the state. It appends
// to changed the budget held before when the PDB changed or went (the nodes
// that matched a pod to it must be recomputed), and adds to namespaces the
// PDB's own when the namespace's index must be rebuilt (which also touches
// every node holding pods of the namespace). A PDB whose selector cannot be
// parsed is kept for its own metrics but matches no pod, which is also what
// the Eviction API does with it (getPodDisruptionBudgets in eviction.go
// skips it); since it cannot tell which pods the PDB was meant to guard, it
// is reported as an error.
func (c *Collector) refreshBudget(key string, namespaces map[string]struct{}, changed []*budget) []*budget {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return changed
	}
	k := pdbKey{ns, name}
	old := c.budgets[k]
	obj, exists, _ := c.pdbs.GetStore().GetByKey(key)
	pdb, ok := obj.(*policyv1.PodDisruptionBudget)
	if !exists || !ok {
		if old != nil {
			changed = append(changed, old)
			c.pdbSeries.Delete(key)
			delete(c.budgets, k)
			delete(c.selectors, k)
			namespaces[ns] = struct{}{}
		}
		return changed
	}
	if old != nil && old.pdb == pdb {
		return changed
	}
	b := old
	if b == nil {
		b = &budget{}
		c.budgets[k] = b
	} else {
		changed = append(changed, b)
	}
	if old == nil || !equality.Semantic.DeepEqual(old.pdb.Spec.Selector, pdb.Spec.Selector) {
		b.sel = parseSelector(pdb)
		c.selectors[k] = b.sel
		namespaces[ns] = struct{}{}
	}
	b.pdb = pdb
	if !c.nodesOnly {
		c.pdbSeries.Update(key, func(out *metricstore.Builder) { renderBudget(out, pdb) })
	}
	return changed
}

// markNodes adds to nodes those whose series the changed budgets or the
// namespaces' new selectors may change: those whose last computation
// matched a pod to a changed budget or to any budget of one of the
// namespaces, and those holding a pod of one of the namespaces that matched
// no budget. It takes one pass over the nodes' lists, about half a
// millisecond at kubetest.Production; keeping instead a set of nodes per
// budget took 5 MiB there, and a list of every namespace per node 2.4 MiB.
func (c *Collector) markNodes(changed []*budget, namespaces, nodes map[string]struct{}) {
	if len(namespaces) > 0 {
		for k, b := range c.budgets {
			if _, ok := namespaces[k.namespace]; ok {
				changed = append(changed, b)
			}
		}
	}
	if len(changed) == 0 && len(namespaces) == 0 {
		return
	}
	for _, b := range changed {
		b.changed = true
	}
	for name, st := range c.nodeStates {
		if st.touchedBy(namespaces) {
			nodes[name] = struct{}{}
		}
	}
	for _, b := range changed {
		b.changed = false
	}
}

// reindex rebuilds the budget index of the given namespaces, in one pass
// over the budgets.
func (c *Collector) reindex(namespaces map[string]struct{}) {
	if len(namespaces) == 0 {
		return
	}
	byNamespace := make(map[string][]*budget, len(namespaces))
	for k, b := range c.budgets {
		if _, ok := namespaces[k.namespace]; ok {
			byNamespace[k.namespace] = append(byNamespace[k.namespace], b)
		}
	}
	for ns := range namespaces {
		if budgets := byNamespace[ns]; len(budgets) > 0 {
			c.namespaces[ns] = newNamespaceBudgets(budgets)
		} else {
			delete(c.namespaces, ns)
		}
	}
}

// refreshNode recomputes node name's series from its pods, or forgets it
// when it is no longer in the node store.
func (c *Collector) refreshNode(name string, podIndex cache.Indexer) error {
	_, exists, _ := c.nodes.GetStore().GetByKey(name)
	var st *nodeState
	if exists {
		pods, err := podIndex.ByIndex(kube.PodNodeIndex, name)
		if err != nil {
			// Only when the index is missing: the node keeps its last series.
			return fmt.Errorf("listing the pods of node %s: %w", name, err)
		}
		c.nodeSeries.Update(name, func(out *metricstore.Builder) {
			st = c.scratch.compute(name, pods, c.namespaces, out)
		})
	}
	if st == nil {
		c.nodeSeries.Delete(name)
		delete(c.nodeStates, name)
		return nil
	}
	c.nodeStates[name] = st
	return nil
}
