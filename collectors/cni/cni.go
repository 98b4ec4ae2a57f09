// Package cni is the VPC CNI IP-space collector: how many addresses the
// cluster's subnets have left, per subnet and per zone, and per node how
// many pod addresses its instance type can hold and how many it holds.
// A rolling upgrade launches new nodes before the old ones go, and each new
// node's VPC CNI takes addresses from its zone's subnets at start: a zone
// whose free addresses are below what one more node needs blocks the surge.
//
// The VPC CNI's settings come from the aws-node DaemonSet's environment
// (settings.go; flags override them). With custom networking, pods take
// their addresses from the subnets of the ENIConfigs (role "pod") while
// nodes take theirs from the cluster subnets (role "node"); with prefix
// delegation, what counts is free aligned /28 blocks (prefixes.go).
//
// AWS is only called by the background Refresher; Update reads the last good
// AWS values and the informers.
package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// DefaultInterval is how often AWS is asked when Options.Interval is 0.
const DefaultInterval = 5 * time.Minute

// ClusterTagPrefix, followed by the cluster name, is the tag key of the
// subnets of a cluster (values "owned" or "shared").
const ClusterTagPrefix = "kubernetes.io/cluster/"

// AWS caps the values of one filter at 200 and the instance types of one
// DescribeInstanceTypes call at 100.
const (
	filterBatch = 200
	typesBatch  = 100
)

// prefixIPs is the addresses one /28 prefix gives the VPC CNI with prefix
// delegation, in place of one secondary address.
const prefixIPs = 16

// Subnet roles, the role label: RoleNode subnets hold the nodes' primary
// addresses (and the pods' too without custom networking); RolePod subnets
// are the ENIConfigs' subnets, which hold the pods' addresses with custom
// networking.
const (
	RoleNode = "node"
	RolePod  = "pod"
)

var (
	// Every series carries the account and region of the collector's AWS
	// target (targetLabels), so that two targets' series stay distinct.
	targetLabels = []string{"account", "region"}
	subnetLabels = withTarget("subnet_id", "vpc_id", "zone", "cidr", "role")

	subnetAvailableDesc = prometheus.NewDesc("upgradeguard_subnet_available_ips",
		"Free IPv4 addresses of a cluster subnet (AvailableIpAddressCount), as of the last AWS refresh.",
		subnetLabels, nil)
	subnetUsableDesc = prometheus.NewDesc("upgradeguard_subnet_usable_ips",
		"IPv4 addresses of a cluster subnet that can ever be assigned: 2^(32-prefix) - 5, as AWS reserves five per subnet.",
		subnetLabels, nil)
	// zoneAvailableDesc is what a surge needs to compare with: a new node's
	// VPC CNI takes its warm pool of addresses from the subnets of its zone,
	// so an alert fires when this falls below what replacing one node of the
	// zone takes (e.g. its upgradeguard_node_ip_capacity with a full warm
	// pool, or WARM_IP_TARGET plus the node's primary addresses).
	zoneAvailableDesc = prometheus.NewDesc("upgradeguard_zone_available_ips",
		"Free IPv4 addresses of the cluster subnets of a role in a zone, summed, as of the last AWS refresh; a new node in the zone takes its addresses from these (its pods' from the pod subnets with custom networking).",
		withTarget("zone", "role"), nil)
	subnetPrefixesDesc = prometheus.NewDesc("upgradeguard_subnet_available_prefixes",
		"Free aligned /28 blocks of a cluster subnet that EC2 can delegate with prefix delegation (not touching an address or prefix in use, an explicit CIDR reservation or AWS's five addresses), as of the last AWS refresh; only with prefix delegation.",
		subnetLabels, nil)
	zonePrefixesDesc = prometheus.NewDesc("upgradeguard_zone_available_prefixes",
		"Free aligned /28 blocks of the cluster subnets of a role in a zone, summed, as of the last AWS refresh; only with prefix delegation.",
		withTarget("zone", "role"), nil)
	vpcCNINodesDesc = prometheus.NewDesc("upgradeguard_vpc_cni_nodes",
		"Nodes the aws-node DaemonSet (the VPC CNI) should run on: its status.desiredNumberScheduled; 0 when there is no aws-node DaemonSet in kube-system.",
		withTarget(), nil)
	vpcCNISettingDesc = prometheus.NewDesc("upgradeguard_vpc_cni_setting",
		"A VPC CNI setting in force (booleans 1 or 0) and where it came from: daemonset (aws-node's environment), flag (an exporter flag overriding it), default (unset: ipamd's default) or unresolved (set from a reference the exporter does not read: ipamd's default is assumed).",
		withTarget("setting", "source"), nil)
	nodeCapacityDesc = prometheus.NewDesc("upgradeguard_node_ip_capacity",
		"Pod IPv4 addresses the VPC CNI can assign on the node: ENIs of the default network card times (addresses per ENI - 1), times 16 with prefix delegation, one ENI fewer with custom networking.",
		withTarget("node"), nil)
	nodePodIPsDesc = prometheus.NewDesc("upgradeguard_node_pod_ips",
		"Pods on the node that hold a VPC CNI address: with a pod IP, not hostNetwork, not Succeeded or Failed.",
		withTarget("node"), nil)
)

// withTarget returns the account and region labels followed by labels.
func withTarget(labels ...string) []string {
	return append(append([]string{}, targetLabels...), labels...)
}

// Options configure the collector.
type Options struct {
	// EC2 is the client of the region, built with awsapi's APIOptions so
	// that its requests are budgeted and counted.
	EC2 *ec2.Client
	// Account and Region are the AWS target: the account and region labels
	// of every series.
	Account, Region string
	// Nodes and Pods are the shared informers; the node transform must keep
	// the instance-type labels (nodes.Options.NodeLabels does).
	Nodes, Pods *kube.Informer
	// AWSNode is the aws-node DaemonSet informer (kube.Informers.AWSNode),
	// for the VPC CNI's settings and nodes; nil: ipamd's defaults and no
	// upgradeguard_vpc_cni_nodes.
	AWSNode *kube.Informer
	// ENIConfigs is the ENIConfig informer (kube.Informers.ENIConfigs),
	// for the pod subnets with custom networking; nil: none.
	ENIConfigs *kube.Informer
	// SubnetIDs are the cluster's subnets. Without them, the subnets tagged
	// kubernetes.io/cluster/<ClusterName>; without a ClusterName, the subnets
	// of the nodes' instances and their network interfaces.
	SubnetIDs   []string
	ClusterName string
	// Overrides replace the aws-node DaemonSet's settings.
	Overrides Overrides
	// Interval between AWS refreshes; 0 means DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger
}

// Collector exports the VPC CNI's IP space.
type Collector struct {
	opts      Options
	refresher *awsapi.Refresher

	mu         sync.Mutex
	subnets    []subnet            // last good DescribeSubnets of the node subnets, sorted by id
	podSubnets []subnet            // last good DescribeSubnets of the ENIConfigs' subnets, sorted by id
	types      map[string]typeInfo // last good DescribeInstanceTypes, by name
	// prefixes are the free /28 blocks by subnet id of the last good
	// prefix refresh; nil when prefix delegation was off.
	prefixes map[string]int
	// The outcome of the last refresh of each part; refreshed tells
	// whether one has run.
	subnetsErr, podSubnetsErr, prefixesErr, typesErr error
	refreshed                                        bool
}

type subnet struct {
	id, vpc, zone, cidr string
	available, usable   float64
}

type typeInfo struct {
	enis       int32 // of the default network card
	ipv4PerENI int32
}

// New returns a collector; its Refreshers must run for the AWS metrics to appear.
func New(opts Options) *Collector {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{opts: opts, types: map[string]typeInfo{}}
	c.refresher = &awsapi.Refresher{Collector: "cni", Account: opts.Account, Region: opts.Region, Interval: opts.Interval, Refresh: c.Refresh}
	return c
}

// Refreshers returns the background loops that call AWS.
func (c *Collector) Refreshers() []*awsapi.Refresher { return []*awsapi.Refresher{c.refresher} }

// Refresh asks AWS for the subnets (the ENIConfigs' too with custom
// networking; their ENIs and CIDR reservations with prefix delegation) and
// the nodes' instance types. Each part that fails keeps its last good
// values; the error joins the failures.
func (c *Collector) Refresh(ctx context.Context) error {
	settings, problems := SettingsFrom(c.awsNode(), c.opts.Overrides)
	for _, p := range problems {
		c.opts.Logger.Warn("VPC CNI setting of the aws-node DaemonSet not usable as written", "problem", p)
	}
	nodeList := c.nodeList()
	serr := c.refreshSubnets(ctx, nodeList)
	var perr, xerr error
	if settings.CustomNetworking {
		perr = c.refreshPodSubnets(ctx, settings)
	} else {
		c.mu.Lock()
		c.podSubnets = nil
		c.mu.Unlock()
	}
	if settings.PrefixDelegation {
		c.mu.Lock()
		all := append(slices.Clone(c.subnets), c.podSubnets...)
		c.mu.Unlock()
		var free map[string]int
		if free, xerr = c.refreshPrefixes(ctx, all); xerr == nil {
			c.mu.Lock()
			c.prefixes = free
			c.mu.Unlock()
		}
	} else {
		c.mu.Lock()
		c.prefixes = nil
		c.mu.Unlock()
	}
	terr := c.refreshTypes(ctx, nodeList)
	c.mu.Lock()
	c.subnetsErr, c.podSubnetsErr, c.prefixesErr, c.typesErr, c.refreshed = serr, perr, xerr, terr, true
	c.mu.Unlock()
	return errors.Join(serr, perr, xerr, terr)
}

func (c *Collector) nodeList() []*kube.Node {
	var out []*kube.Node
	for _, obj := range c.opts.Nodes.GetStore().List() {
		if n, ok := obj.(*kube.Node); ok {
			out = append(out, n)
		}
	}
	return out
}

func instanceType(n *kube.Node) string {
	if v := n.Labels[kube.LabelInstanceType]; v != "" {
		return v
	}
	return n.Labels[kube.LabelInstanceTypeLegacy]
}

func batches(s []string, n int) [][]string {
	var out [][]string
	for len(s) > 0 {
		k := min(n, len(s))
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

// refreshSubnets replaces the subnets with what AWS says now, so that
// deleted subnets disappear. Subnets asked for by id are filtered for
// rather than named: a deleted one must not fail the whole call.
func (c *Collector) refreshSubnets(ctx context.Context, nodeList []*kube.Node) error {
	var filters [][]types.Filter
	switch {
	case len(c.opts.SubnetIDs) > 0:
		for _, b := range batches(c.opts.SubnetIDs, filterBatch) {
			filters = append(filters, []types.Filter{{Name: aws.String("subnet-id"), Values: b}})
		}
	case c.opts.ClusterName != "":
		filters = [][]types.Filter{{{Name: aws.String("tag-key"), Values: []string{ClusterTagPrefix + c.opts.ClusterName}}}}
	default:
		ids, err := c.instanceSubnets(ctx, nodeList)
		if err != nil {
			return err
		}
		for _, b := range batches(ids, filterBatch) {
			filters = append(filters, []types.Filter{{Name: aws.String("subnet-id"), Values: b}})
		}
	}
	out, err := c.describeSubnets(ctx, filters)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.subnets = out
	c.mu.Unlock()
	return nil
}

// refreshPodSubnets replaces the pod subnets with the ENIConfigs' subnets
// as AWS describes them now. With custom networking ipamd creates every
// secondary ENI in the subnet of the node's ENIConfig
// (aws/amazon-vpc-cni-k8s pkg/awsutils/awsutils.go createENI with
// useCustomCfg; pkg/eniconfig/eniconfig.go MyENIConfig), which must be in
// the node's zone: so each ENIConfig subnet counts for its own zone.
//
// With ENI_CONFIG_LABEL_DEF a zone label, a node takes the ENIConfig named
// by its zone (pkg/eniconfig/eniconfig.go GetNodeSpecificENIConfigName), so
// only ENIConfigs named by their subnet's zone count; others (an ENIConfig
// left over, one for another purpose) would add space no new node uses.
// With another label the ENIConfig a new node takes is not known here: every
// ENIConfig's subnet counts for its zone.
func (c *Collector) refreshPodSubnets(ctx context.Context, settings Settings) error {
	named := c.eniConfigsBySubnet()
	ids := slices.Sorted(maps.Keys(named))
	if len(ids) == 0 {
		c.opts.Logger.Warn("custom networking is on but no ENIConfig names a subnet; pods of new nodes get no address")
	}
	var filters [][]types.Filter
	for _, b := range batches(ids, filterBatch) {
		filters = append(filters, []types.Filter{{Name: aws.String("subnet-id"), Values: b}})
	}
	out, err := c.describeSubnets(ctx, filters)
	if err != nil {
		return fmt.Errorf("the ENIConfigs' subnets: %w", err)
	}
	if zoneLabels[settings.ENIConfigLabelDef] {
		out = slices.DeleteFunc(out, func(s subnet) bool {
			if slices.Contains(named[s.id], s.zone) {
				return false
			}
			c.opts.Logger.Info("ENIConfig subnet not counted: ENIConfigs are chosen by zone and none named by its zone names it",
				"subnet", s.id, "zone", s.zone, "eniconfigs", named[s.id])
			return true
		})
	}
	c.mu.Lock()
	c.podSubnets = out
	c.mu.Unlock()
	return nil
}

// zoneLabels are the node labels holding the zone: with one of them as
// ENI_CONFIG_LABEL_DEF, ENIConfigs are named by zone.
var zoneLabels = map[string]bool{"topology.kubernetes.io/zone": true, "failure-domain.beta.kubernetes.io/zone": true}

// eniConfigsBySubnet returns the names of the ENIConfigs by the subnet they
// name.
func (c *Collector) eniConfigsBySubnet() map[string][]string {
	out := map[string][]string{}
	if c.opts.ENIConfigs == nil {
		return out
	}
	for _, obj := range c.opts.ENIConfigs.GetStore().List() {
		if e, ok := obj.(*kube.ENIConfig); ok && e.Subnet != "" {
			out[e.Subnet] = append(out[e.Subnet], e.Name)
		}
	}
	return out
}

// describeSubnets runs DescribeSubnets with each set of filters and returns
// the subnets found, sorted by id.
func (c *Collector) describeSubnets(ctx context.Context, filters [][]types.Filter) ([]subnet, error) {
	found := map[string]subnet{}
	for _, f := range filters {
		p := ec2.NewDescribeSubnetsPaginator(c.opts.EC2, &ec2.DescribeSubnetsInput{Filters: f, MaxResults: aws.Int32(1000)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing subnets (filter %s): %w", aws.ToString(f[0].Name), err)
			}
			for _, s := range page.Subnets {
				id := aws.ToString(s.SubnetId)
				cidr := aws.ToString(s.CidrBlock)
				usable := 0.0
				if pfx, err := netip.ParsePrefix(cidr); err == nil && pfx.Addr().Is4() {
					usable = float64(int64(1)<<(32-pfx.Bits()) - 5)
				}
				found[id] = subnet{
					id: id, vpc: aws.ToString(s.VpcId), zone: aws.ToString(s.AvailabilityZone), cidr: cidr,
					available: float64(aws.ToInt32(s.AvailableIpAddressCount)), usable: usable,
				}
			}
		}
	}
	out := make([]subnet, 0, len(found))
	for _, id := range slices.Sorted(maps.Keys(found)) {
		out = append(out, found[id])
	}
	return out, nil
}

// instanceSubnets returns the subnets of the nodes' instances and of their
// network interfaces (with custom networking, pods live in other subnets
// than the node's primary address).
func (c *Collector) instanceSubnets(ctx context.Context, nodeList []*kube.Node) ([]string, error) {
	var ids []string
	for _, n := range nodeList {
		if id := kube.InstanceID(n.ProviderID); id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	subnets := map[string]bool{}
	for _, b := range batches(ids, filterBatch) {
		p := ec2.NewDescribeInstancesPaginator(c.opts.EC2, &ec2.DescribeInstancesInput{
			Filters:    []types.Filter{{Name: aws.String("instance-id"), Values: b}},
			MaxResults: aws.Int32(1000),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describing the nodes' instances to find their subnets: %w", err)
			}
			for _, r := range page.Reservations {
				for _, i := range r.Instances {
					if s := aws.ToString(i.SubnetId); s != "" {
						subnets[s] = true
					}
					for _, e := range i.NetworkInterfaces {
						if s := aws.ToString(e.SubnetId); s != "" {
							subnets[s] = true
						}
					}
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(subnets)), nil
}

// refreshTypes asks for the instance types the nodes have now. Types are
// filtered for rather than named, as a name AWS does not know fails the
// whole call.
func (c *Collector) refreshTypes(ctx context.Context, nodeList []*kube.Node) error {
	want := map[string]bool{}
	for _, n := range nodeList {
		if t := instanceType(n); t != "" {
			want[t] = true
		}
	}
	found := map[string]typeInfo{}
	for _, b := range batches(slices.Sorted(maps.Keys(want)), typesBatch) {
		p := ec2.NewDescribeInstanceTypesPaginator(c.opts.EC2, &ec2.DescribeInstanceTypesInput{
			Filters:    []types.Filter{{Name: aws.String("instance-type"), Values: b}},
			MaxResults: aws.Int32(100),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("describing instance types %v: %w", b, err)
			}
			for _, t := range page.InstanceTypes {
				if info, ok := typeOf(t); ok {
					found[string(t.InstanceType)] = info
				}
			}
		}
	}
	c.mu.Lock()
	c.types = found
	c.mu.Unlock()
	return nil
}

// typeOf reads the default network card's ENIs: the VPC CNI attaches ENIs
// to it only.
func typeOf(t types.InstanceTypeInfo) (typeInfo, bool) {
	enis, perENI, ok := NetworkShape(t)
	return typeInfo{enis: enis, ipv4PerENI: perENI}, ok
}

// NetworkShape is what the VPC CNI can use of an instance type: the ENIs of
// the default network card (the only one it attaches ENIs to) and the IPv4
// addresses per ENI, the ENI's primary address included.
func NetworkShape(t types.InstanceTypeInfo) (enis, ipv4PerENI int32, ok bool) {
	ni := t.NetworkInfo
	if ni == nil || ni.Ipv4AddressesPerInterface == nil {
		return 0, 0, false
	}
	enis = aws.ToInt32(ni.MaximumNetworkInterfaces)
	def := aws.ToInt32(ni.DefaultNetworkCardIndex)
	for _, card := range ni.NetworkCards {
		if aws.ToInt32(card.NetworkCardIndex) == def {
			enis = aws.ToInt32(card.MaximumNetworkInterfaces)
			break
		}
	}
	return enis, aws.ToInt32(ni.Ipv4AddressesPerInterface), true
}

// capacity is the pod addresses of a type: every ENI keeps its primary
// address for itself; with custom networking the primary ENI is the node's
// and holds no pod; with prefix delegation each secondary slot is a /28.
func capacity(t typeInfo, s Settings) float64 {
	enis := int64(t.enis)
	if s.CustomNetworking {
		enis--
	}
	ips := max(enis, 0) * max(int64(t.ipv4PerENI)-1, 0)
	if s.PrefixDelegation {
		ips *= prefixIPs
	}
	return float64(ips)
}

// Update sends the last good AWS values and the nodes' pod addresses. It
// returns an error when a part of the last refresh failed (its values are
// the last good ones, older than the others), none ran yet, or an informer
// fails.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	c.mu.Lock()
	roles := map[string][]subnet{RoleNode: c.subnets, RolePod: c.podSubnets}
	typeInfos, prefixes := c.types, c.prefixes
	errs := []error{c.subnetsErr, c.podSubnetsErr, c.prefixesErr, c.typesErr}
	if !c.refreshed {
		errs = append(errs, fmt.Errorf("no AWS refresh in %s yet", c.opts.Region))
	}
	c.mu.Unlock()

	acct, region := c.opts.Account, c.opts.Region
	type zoneRole struct{ zone, role string }
	zones, zonePrefixes := map[zoneRole]float64{}, map[zoneRole]float64{}
	for role, subnets := range roles {
		for _, s := range subnets {
			ch <- prometheus.MustNewConstMetric(subnetAvailableDesc, prometheus.GaugeValue, s.available, acct, region, s.id, s.vpc, s.zone, s.cidr, role)
			ch <- prometheus.MustNewConstMetric(subnetUsableDesc, prometheus.GaugeValue, s.usable, acct, region, s.id, s.vpc, s.zone, s.cidr, role)
			zones[zoneRole{s.zone, role}] += s.available
			if n, ok := prefixes[s.id]; ok {
				ch <- prometheus.MustNewConstMetric(subnetPrefixesDesc, prometheus.GaugeValue, float64(n), acct, region, s.id, s.vpc, s.zone, s.cidr, role)
				zonePrefixes[zoneRole{s.zone, role}] += float64(n)
			}
		}
	}
	for k, v := range zones {
		ch <- prometheus.MustNewConstMetric(zoneAvailableDesc, prometheus.GaugeValue, v, acct, region, k.zone, k.role)
	}
	for k, v := range zonePrefixes {
		ch <- prometheus.MustNewConstMetric(zonePrefixesDesc, prometheus.GaugeValue, v, acct, region, k.zone, k.role)
	}

	ds := c.awsNode()
	settings, _ := SettingsFrom(ds, c.opts.Overrides)
	for _, name := range settingNames {
		ch <- prometheus.MustNewConstMetric(vpcCNISettingDesc, prometheus.GaugeValue, settings.value(name), acct, region, name, settings.Sources[name])
	}
	if c.opts.AWSNode != nil {
		desired := 0.0
		if ds != nil {
			desired = float64(ds.Status.DesiredNumberScheduled)
		}
		ch <- prometheus.MustNewConstMetric(vpcCNINodesDesc, prometheus.GaugeValue, desired, acct, region)
		errs = append(errs, c.opts.AWSNode.Healthy())
	}
	if c.opts.ENIConfigs != nil {
		errs = append(errs, c.opts.ENIConfigs.Healthy())
	}

	pods := c.opts.Pods.GetIndexer()
	for _, n := range c.nodeList() {
		if t, ok := typeInfos[instanceType(n)]; ok {
			ch <- prometheus.MustNewConstMetric(nodeCapacityDesc, prometheus.GaugeValue, capacity(t, settings), acct, region, n.Name)
		}
		objs, err := pods.ByIndex(kube.PodNodeIndex, n.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the pods of node %s: %w", n.Name, err))
			continue
		}
		used := 0
		for _, obj := range objs {
			p, ok := obj.(*kube.Pod)
			if ok && p.HasPodIP && !p.HostNetwork && p.Phase != corev1.PodSucceeded && p.Phase != corev1.PodFailed {
				used++
			}
		}
		ch <- prometheus.MustNewConstMetric(nodePodIPsDesc, prometheus.GaugeValue, float64(used), acct, region, n.Name)
	}

	c.refresher.SendStatus(ch)
	errs = append(errs, c.opts.Nodes.Healthy(), c.opts.Pods.Healthy())
	return errors.Join(errs...)
}

var _ collectors.Collector = (*Collector)(nil)
