// Package nodes is the node-readiness collector: Ready conditions, kubelet
// Lease heartbeat age, readiness flapping, cordons and what each node is.
package nodes

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// Well-known node labels read by the collector.
const (
	LabelZone               = corev1.LabelTopologyZone
	LabelZoneLegacy         = corev1.LabelFailureDomainBetaZone
	LabelInstanceType       = corev1.LabelInstanceTypeStable
	LabelInstanceTypeLegacy = corev1.LabelInstanceType
	LabelKopsInstanceGroup  = "kops.k8s.io/instancegroup"
	LabelEKSNodegroup       = "eks.amazonaws.com/nodegroup"
)

var (
	readyDesc = prometheus.NewDesc("upgradeguard_node_ready",
		"Whether the node's Ready condition is True (1) or False or Unknown (0).",
		[]string{"node"}, nil)
	heartbeatAgeDesc = prometheus.NewDesc("upgradeguard_node_heartbeat_age_seconds",
		"Seconds since the exporter saw the kubelet renew the node's Lease in kube-node-lease, on the exporter's own clock; never negative.",
		[]string{"node"}, nil)
	leaseDurationDesc = prometheus.NewDesc("upgradeguard_node_lease_duration_seconds",
		"Lease duration the kubelet declares on the node's Lease; a heartbeat older than this is overdue.",
		[]string{"node"}, nil)
	transitionsDesc = prometheus.NewDesc("upgradeguard_node_ready_transitions_total",
		"Changes of the node's Ready condition status observed since the exporter started.",
		[]string{"node"}, nil)
	unschedulableDesc = prometheus.NewDesc("upgradeguard_node_unschedulable",
		"Whether the node is cordoned (spec.unschedulable).",
		[]string{"node"}, nil)
	createdDesc = prometheus.NewDesc("upgradeguard_node_created_timestamp_seconds",
		"Unix time when the node object was created.",
		[]string{"node"}, nil)
	taintDesc = prometheus.NewDesc("upgradeguard_node_spec_taint",
		"A taint of the node (spec.taints), one series of value 1 per taint, as kube-state-metrics' kube_node_spec_taint.",
		[]string{"node", "key", "value", "effect"}, nil)
	deletionDesc = prometheus.NewDesc("upgradeguard_node_deletion_timestamp_seconds",
		"Unix time of the node object's deletionTimestamp: the node is being deleted. Only for such nodes.",
		[]string{"node"}, nil)
	infoDesc = prometheus.NewDesc("upgradeguard_node_info",
		"Information about the node: kubelet version, instance type, zone, node group and EC2 instance ID.",
		[]string{"node", "kubelet_version", "instance_type", "zone", "nodegroup", "instance_id"}, nil)
)

// Options configure the collector.
type Options struct {
	// NodegroupLabel, when set, names the node label that holds the node
	// group, tried before the kops and EKS labels.
	NodegroupLabel string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NodeLabels returns the labels the collector reads, for the node transform.
func (o Options) NodeLabels() []string {
	l := []string{LabelZone, LabelZoneLegacy, LabelInstanceType, LabelInstanceTypeLegacy,
		LabelKopsInstanceGroup, LabelEKSNodegroup}
	if o.NodegroupLabel != "" {
		l = append(l, o.NodegroupLabel)
	}
	return l
}

// Collector exports node readiness from the node and Lease informers.
type Collector struct {
	nodes, leases *kube.Informer
	opts          Options

	mu          sync.Mutex
	transitions map[string]float64

	heartbeats *heartbeats
}

// New returns a collector over the shared node and Lease informers. It
// registers event handlers on the node informer to count Ready transitions
// and on the Lease informer to time renewals (heartbeat.go), so it must be
// called before the informers start to see every update.
func New(nodes, leases *kube.Informer, opts Options) (*Collector, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Collector{nodes: nodes, leases: leases, opts: opts, transitions: map[string]float64{}, heartbeats: newHeartbeats()}
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: c.onUpdate,
		DeleteFunc: c.onDelete,
	}); err != nil {
		return nil, err
	}
	if _, err := leases.AddEventHandler(c.heartbeats.handler(opts.Now)); err != nil {
		return nil, err
	}
	return c, nil
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status
		}
	}
	return corev1.ConditionUnknown
}

func (c *Collector) onUpdate(oldObj, newObj any) {
	o, ok1 := oldObj.(*corev1.Node)
	n, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 || readyStatus(o) == readyStatus(n) {
		return
	}
	c.mu.Lock()
	c.transitions[n.Name]++
	c.mu.Unlock()
}

func (c *Collector) onDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	c.mu.Lock()
	delete(c.transitions, n.Name)
	c.mu.Unlock()
}

// Update sends the metrics of every node in the informer's cache. When an
// informer is failing, it still sends the last known state and returns the error.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	now := c.opts.Now()
	leases := c.leases.GetIndexer()
	for _, obj := range c.nodes.GetStore().List() {
		n, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		name := n.Name
		ready := 0.0
		if readyStatus(n) == corev1.ConditionTrue {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready, name)
		ch <- prometheus.MustNewConstMetric(unschedulableDesc, prometheus.GaugeValue, collectors.BoolFloat(n.Spec.Unschedulable), name)
		ch <- prometheus.MustNewConstMetric(createdDesc, prometheus.GaugeValue,
			float64(n.CreationTimestamp.Unix()), name)
		if n.DeletionTimestamp != nil {
			ch <- prometheus.MustNewConstMetric(deletionDesc, prometheus.GaugeValue, float64(n.DeletionTimestamp.Unix()), name)
		}
		for _, t := range n.Spec.Taints {
			ch <- prometheus.MustNewConstMetric(taintDesc, prometheus.GaugeValue, 1, name, t.Key, t.Value, string(t.Effect))
		}
		ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, name,
			n.Status.NodeInfo.KubeletVersion,
			firstLabel(n, LabelInstanceType, LabelInstanceTypeLegacy),
			firstLabel(n, LabelZone, LabelZoneLegacy),
			c.nodegroup(n),
			InstanceID(n.Spec.ProviderID))

		c.mu.Lock()
		t := c.transitions[name]
		c.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(transitionsDesc, prometheus.CounterValue, t, name)

		// A node without a Lease (or one never renewed) has no heartbeat
		// series: its age is unknown, not zero.
		lobj, exists, _ := leases.GetByKey(kube.NodeLeaseNamespace + "/" + name)
		if !exists {
			continue
		}
		lease, ok := lobj.(*coordinationv1.Lease)
		if !ok {
			continue
		}
		// The event handler has normally observed this renewTime already;
		// observing it again covers a scrape between the cache's update
		// and the handler's call.
		if lname, renew, ok := renewTime(lease); ok {
			c.heartbeats.observe(lname, renew, now)
		}
		if age, ok := c.heartbeats.age(name, now); ok {
			ch <- prometheus.MustNewConstMetric(heartbeatAgeDesc, prometheus.GaugeValue, age, name)
		}
		if lease.Spec.LeaseDurationSeconds != nil {
			ch <- prometheus.MustNewConstMetric(leaseDurationDesc, prometheus.GaugeValue,
				float64(*lease.Spec.LeaseDurationSeconds), name)
		}
	}
	return errors.Join(c.nodes.Healthy(), c.leases.Healthy())
}

func (c *Collector) nodegroup(n *corev1.Node) string {
	if c.opts.NodegroupLabel != "" {
		if v := n.Labels[c.opts.NodegroupLabel]; v != "" {
			return v
		}
	}
	return firstLabel(n, LabelKopsInstanceGroup, LabelEKSNodegroup)
}

func firstLabel(n *corev1.Node, keys ...string) string {
	for _, k := range keys {
		if v := n.Labels[k]; v != "" {
			return v
		}
	}
	return ""
}

// InstanceID returns the EC2 instance ID of an AWS provider ID
// ("aws:///us-east-1a/i-0123456789abcdef0"), or "" for other providers.
func InstanceID(providerID string) string {
	if !strings.HasPrefix(providerID, "aws://") {
		return ""
	}
	id := providerID[strings.LastIndexByte(providerID, '/')+1:]
	if !strings.HasPrefix(id, "i-") {
		return ""
	}
	return id
}

var _ collectors.Collector = (*Collector)(nil)
