// Package nodes is the node-readiness collector: Ready conditions, kubelet
// Lease heartbeat age, readiness flapping, cordons and what each node is.
//
// Its series are rendered at watch time (internal/metricstore, after
// kube-state-metrics' pkg/metrics_store): the node and Lease informers'
// event handlers render each node's series when its object changes, and a
// scrape only writes them out. The one value a scrape computes is the
// heartbeat age, which depends on the scrape's clock (ages.go).
package nodes

import (
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
	"github.com/upgradeguard/upgradeguard/internal/metricstore"
)

var (
	readyFamily = &metricstore.Family{Name: "upgradeguard_node_ready",
		Help: "Whether the node's Ready condition is True (1) or False or Unknown (0).",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	heartbeatAgeFamily = &metricstore.Family{Name: "upgradeguard_node_heartbeat_age_seconds",
		Help: "Seconds since the exporter saw the kubelet renew the node's Lease in kube-node-lease, on the exporter's own clock; never negative.",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	leaseDurationFamily = &metricstore.Family{Name: "upgradeguard_node_lease_duration_seconds",
		Help: "Lease duration the kubelet declares on the node's Lease; a heartbeat older than this is overdue.",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	transitionsFamily = &metricstore.Family{Name: "upgradeguard_node_ready_transitions_total",
		Help: "Changes of the node's Ready condition status observed since the exporter started.",
		Type: metricstore.Counter, LabelNames: []string{"node"}}
	unschedulableFamily = &metricstore.Family{Name: "upgradeguard_node_unschedulable",
		Help: "Whether the node is cordoned (spec.unschedulable).",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	createdFamily = &metricstore.Family{Name: "upgradeguard_node_created_timestamp_seconds",
		Help: "Unix time when the node object was created.",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	taintFamily = &metricstore.Family{Name: "upgradeguard_node_spec_taint",
		Help: "A taint of the node (spec.taints), one series of value 1 per taint, as kube-state-metrics' kube_node_spec_taint.",
		Type: metricstore.Gauge, LabelNames: []string{"node", "key", "value", "effect"}}
	deletionFamily = &metricstore.Family{Name: "upgradeguard_node_deletion_timestamp_seconds",
		Help: "Unix time of the node object's deletionTimestamp: the node is being deleted. Only for such nodes.",
		Type: metricstore.Gauge, LabelNames: []string{"node"}}
	infoFamily = &metricstore.Family{Name: "upgradeguard_node_info",
		Help: "Information about the node: kubelet version, instance type, zone, node group and EC2 instance ID.",
		Type: metricstore.Gauge, LabelNames: []string{"node", "kubelet_version", "instance_type", "zone", "nodegroup", "instance_id"}}
)

// Options configure the collector.
type Options struct {
	// NodegroupLabel, when set, names the node label that holds the node
	// group, tried before the kops and EKS labels.
	NodegroupLabel string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ConstLabels end every series, as rendered by metricstore.ConstLabels
	// (the exporter's --cluster); "" for none.
	ConstLabels string
}

// NodeLabels returns the labels the collector reads, for the node transform.
func (o Options) NodeLabels() []string {
	l := slices.Clone(kube.WellKnownNodeLabels)
	if o.NodegroupLabel != "" {
		l = append(l, o.NodegroupLabel)
	}
	return l
}

// Collector exports node readiness from the node and Lease informers. Its
// event handlers keep three renderings up to date: the node families per
// node (nodeSeries), the Lease duration per node (leaseSeries) and the
// heartbeat age series per node, less their value (ages). The Lease ones
// exist only for nodes in the node informer's store: a Lease outlives its
// node until it is garbage-collected, and a Lease may be seen before its
// node.
type Collector struct {
	nodes, leases *kube.Informer
	opts          Options

	nodeSeries  *metricstore.Store
	leaseSeries *metricstore.Store
	ages        *ageSeries

	// mu serialises the node and Lease handlers, which run on their own
	// informers' goroutines, over what they share: which nodes are present
	// and what their Leases say.
	mu sync.Mutex
	// transitions holds the Ready transitions of every node present in
	// the node store; a node is present if and only if it has an entry.
	transitions map[string]float64
	// durations holds spec.leaseDurationSeconds of each node Lease that
	// declares one, whether its node is present or not.
	durations  map[string]int32
	heartbeats *heartbeats
}

// New returns a collector over the shared node and Lease informers. It
// registers the event handlers that render its series, so it must be called
// before the informers start.
func New(nodes, leases *kube.Informer, opts Options) (*Collector, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Collector{
		nodes: nodes, leases: leases, opts: opts,
		nodeSeries: metricstore.NewStore(opts.ConstLabels,
			readyFamily, unschedulableFamily, createdFamily, deletionFamily, taintFamily, infoFamily, transitionsFamily),
		leaseSeries: metricstore.NewStore(opts.ConstLabels, leaseDurationFamily),
		ages:        newAgeSeries(heartbeatAgeFamily, opts.ConstLabels),
		transitions: map[string]float64{},
		durations:   map[string]int32{},
		heartbeats:  newHeartbeats(),
	}
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onNode(nil, obj) },
		UpdateFunc: c.onNode,
		DeleteFunc: c.onNodeDelete,
	}); err != nil {
		return nil, err
	}
	if _, err := leases.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onLease,
		UpdateFunc: func(_, obj any) { c.onLease(obj) },
		DeleteFunc: c.onLeaseDelete,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// onNode renders an added or updated node (oldObj nil for an addition),
// counting a change of its Ready status as a transition. An informer
// delivers a relist as one event per node - with client-go 0.37's defaults
// a deletion of each node gone, then an update of each node still there
// (processReplacedAllInfo in tools/cache/controller.go) - so a relist
// replaces or drops series one node at a time: a scrape never misses a node
// that is still there.
func (c *Collector) onNode(oldObj, newObj any) {
	n, ok := newObj.(*kube.Node)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, present := c.transitions[n.Name]
	if o, ok := oldObj.(*kube.Node); ok && o.Ready != n.Ready {
		t++
	}
	c.transitions[n.Name] = t
	c.nodeSeries.Update(n.Name, func(b *metricstore.Builder) { c.render(b, n, t) })
	if !present {
		c.renderLease(n.Name)
	}
}

// render adds a node's series but the Lease's.
func (c *Collector) render(b *metricstore.Builder, n *kube.Node, transitions float64) {
	name := n.Name
	b.Add(readyFamily, collectors.BoolFloat(n.Ready == corev1.ConditionTrue), name)
	b.Add(unschedulableFamily, collectors.BoolFloat(n.Unschedulable), name)
	b.Add(createdFamily, float64(n.CreationTimestamp.Unix()), name)
	if n.DeletionTimestamp != nil {
		b.Add(deletionFamily, float64(n.DeletionTimestamp.Unix()), name)
	}
	for _, t := range n.Taints {
		b.Add(taintFamily, 1, name, t.Key, t.Value, string(t.Effect))
	}
	b.Add(infoFamily, 1, name,
		n.KubeletVersion,
		firstLabel(n, kube.LabelInstanceType, kube.LabelInstanceTypeLegacy),
		firstLabel(n, kube.LabelZone, kube.LabelZoneLegacy),
		c.nodegroup(n),
		kube.InstanceID(n.ProviderID))
	b.Add(transitionsFamily, transitions, name)
}

// onNodeDelete drops a deleted node's series, its Lease's with them.
func (c *Collector) onNodeDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	n, ok := obj.(*kube.Node)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.transitions, n.Name)
	c.nodeSeries.Delete(n.Name)
	c.leaseSeries.Delete(n.Name)
	c.ages.delete(n.Name)
}

// renderLease renders, or drops, node name's Lease series from what its
// Lease last said and whether the node is present. c.mu is held.
func (c *Collector) renderLease(name string) {
	_, present := c.transitions[name]
	if d, ok := c.durations[name]; ok && present {
		c.leaseSeries.Update(name, func(b *metricstore.Builder) { b.Add(leaseDurationFamily, float64(d), name) })
	} else {
		c.leaseSeries.Delete(name)
	}
	if hb, ok := c.heartbeats.get(name); ok && present {
		c.ages.set(name, hb.probe)
	} else {
		c.ages.delete(name)
	}
}

// onLease observes a node Lease's renewal (heartbeat.go) and renders its
// node's Lease series. A renewal that leaves the duration as it was only
// moves the heartbeat's probe time.
func (c *Collector) onLease(obj any) {
	l, ok := nodeLease(obj)
	if !ok {
		return
	}
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heartbeats.observe(l.Name, renewTime(l), now)
	old, had := c.durations[l.Name]
	d := l.DurationSeconds // 0: unset
	if d != 0 {
		c.durations[l.Name] = d
	} else {
		delete(c.durations, l.Name)
	}
	if _, present := c.transitions[l.Name]; !present {
		return
	}
	if had != (d != 0) || (had && old != d) {
		c.renderLease(l.Name)
	} else if hb, ok := c.heartbeats.get(l.Name); ok {
		c.ages.set(l.Name, hb.probe)
	}
}

// onLeaseDelete forgets a deleted Lease and drops its node's Lease series.
func (c *Collector) onLeaseDelete(obj any) {
	l, ok := nodeLease(obj)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heartbeats.forget(l.Name)
	delete(c.durations, l.Name)
	c.leaseSeries.Delete(l.Name)
	c.ages.delete(l.Name)
}

// nodeLease returns a kubelet's Lease, or ok false for anything else; it
// looks into a cache.DeletedFinalStateUnknown.
func nodeLease(obj any) (*kube.Lease, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	l, ok := obj.(*kube.Lease)
	if !ok || l.Namespace != kube.NodeLeaseNamespace {
		return nil, false
	}
	return l, true
}

// Update sends nothing: the collector's series are rendered as the
// informers deliver objects and written by WriteMetrics. It returns the
// informers' health: an error when one has not synced or is failing, the
// last known state being served meanwhile.
func (c *Collector) Update(chan<- prometheus.Metric) error {
	return errors.Join(c.nodes.Healthy(), c.leases.Healthy())
}

// WriteMetrics writes the collector's families, each once, in the order of
// families; the heartbeat ages are computed on the clock at this call.
func (c *Collector) WriteMetrics(w io.Writer) error {
	if err := c.nodeSeries.WriteMetrics(w); err != nil {
		return err
	}
	if err := c.ages.write(w, c.opts.Now()); err != nil {
		return err
	}
	return c.leaseSeries.WriteMetrics(w)
}

func (c *Collector) nodegroup(n *kube.Node) string {
	if c.opts.NodegroupLabel != "" {
		if v := n.Labels[c.opts.NodegroupLabel]; v != "" {
			return v
		}
	}
	return firstLabel(n, kube.LabelKopsInstanceGroup, kube.LabelEKSNodegroup)
}

func firstLabel(n *kube.Node, keys ...string) string {
	for _, k := range keys {
		if v := n.Labels[k]; v != "" {
			return v
		}
	}
	return ""
}

var (
	_ collectors.Collector = (*Collector)(nil)
	_ metricstore.Writer   = (*Collector)(nil)
)
