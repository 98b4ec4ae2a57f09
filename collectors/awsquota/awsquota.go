// Package awsquota exports AWS service quotas, their usage and the extra
// usage an upgrade's node surge needs, for the quotas an upgrade can run
// into: vCPUs per instance class, ENIs, addresses, security groups, launch
// templates, Auto Scaling groups, EBS storage and snapshots, load balancers
// and NAT gateways.
//
// AWS is called only by the background refreshers (Refreshers): limits
// and the quota utilization report slowly (Service Quotas, default hourly),
// usage and surge demand on a fresh interval (describe calls, default 5m). Every describe call is its
// own source: one that fails keeps its last good values and makes Update
// return an error, while the others stay fresh. Update only reads.
//
// Choices worth knowing:
//   - vCPU usage counts pending and running instances; on-demand ones
//     towards the class's on-demand quota, spot ones towards its spot quota
//     (running spot instances, not open spot requests), instances on
//     dedicated hosts (tenancy host) towards neither, and capacity blocks
//     towards neither. vCPUs come from DescribeInstanceTypes.
//   - The quota utilization report gives upgradeguard_aws_quota_utilization_ratio
//     only for quotas whose usage is not computed here.
//   - Update sends the refreshers' last-success timestamps itself
//     (awsapi.Refresher.SendStatus, collector awsquota_limits,
//     awsquota_usage and awsquota_report).
//   - NAT gateways per zone: usage is the busiest zone's count, so that the
//     series has the same labels as every other quota.
//   - Surge demand assumes the groups are replaced one at a time: for each
//     quota it is the largest demand of one group, SurgeNodes new nodes of
//     the group's instance type, with the ENIs the VPC CNI attaches at start
//     (CNISettings) and the launch template's (or configuration's) EBS
//     volumes. A mixed instances policy counts its worst override type, on
//     the on-demand and the spot quota when its distribution allows both.
//     The subnet addresses the surge nodes take at start are exported per
//     group (upgradeguard_aws_asg_surge_ips), to compare with the free
//     addresses of the cni collector. Groups whose types cannot be resolved
//     (attribute-based selection, unknown types) are counted in
//     upgradeguard_aws_surge_unresolved_groups: the demand is then a lower
//     bound, and the gate and alerts treat it as unknown.
//   - The cluster's groups, their desired capacity and their instances by
//     lifecycle state, with launch times, are exported from the same
//     DescribeAutoScalingGroups and DescribeInstances answers (groups.go), for
//     comparing a group's instances with its nodes.
package awsquota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
)

var (
	quotaLabels = []string{"account", "region", "service", "quota_code", "quota_name"}

	limitDesc = prometheus.NewDesc("upgradeguard_aws_quota_limit",
		"Value of an AWS service quota: the applied value, or AWS's default where none is applied.",
		quotaLabels, nil)
	usageDesc = prometheus.NewDesc("upgradeguard_aws_quota_usage",
		"Usage of an AWS service quota, computed from describe calls, in the quota's unit (vCPUs, TiB, count).",
		quotaLabels, nil)
	ratioDesc = prometheus.NewDesc("upgradeguard_aws_quota_utilization_ratio",
		"Utilization of an AWS service quota (usage over limit) from Service Quotas' quota utilization report, for the quotas whose usage is not computed from describe calls.",
		quotaLabels, nil)
	surgeDesc = prometheus.NewDesc("upgradeguard_aws_quota_surge_demand",
		"Extra usage of an AWS service quota while the cluster's Auto Scaling groups replace their nodes, one group at a time with the configured surge.",
		quotaLabels, nil)
	groupIPsDesc = prometheus.NewDesc("upgradeguard_aws_asg_surge_ips",
		"Subnet IP addresses the surge nodes of an Auto Scaling group take at start (ENI primary and warm pod addresses the VPC CNI allocates), for its largest instance type.",
		[]string{"account", "region", "asg"}, nil)
	groupPodIPsDesc = prometheus.NewDesc("upgradeguard_aws_asg_surge_pod_ips",
		"With VPC CNI custom networking: of upgradeguard_aws_asg_surge_ips, the addresses the surge nodes of an Auto Scaling group take in the pod subnets (the ENIConfigs'); the rest, one primary address per node, is taken in the node subnets.",
		[]string{"account", "region", "asg"}, nil)
	groupPrefixesDesc = prometheus.NewDesc("upgradeguard_aws_asg_surge_prefixes",
		"With VPC CNI prefix delegation: aligned /28 prefixes the surge nodes of an Auto Scaling group take at start (WARM_PREFIX_TARGET, or enough for the IP targets; at least one), for its largest instance type.",
		[]string{"account", "region", "asg"}, nil)
	unresolvedDesc = prometheus.NewDesc("upgradeguard_aws_surge_unresolved_groups",
		"Auto Scaling groups of the cluster whose surge demand is not counted because their instance types or network shape are unknown (attribute-based selection, unknown types); the surge demand is then a lower bound.",
		[]string{"account", "region"}, nil)
)

// Clients are the SDK clients of one region, built by the caller with
// awsapi's APIOptions so that every request is budgeted and counted.
type Clients struct {
	EC2           *ec2.Client
	AutoScaling   *autoscaling.Client
	ELBv2         *elasticloadbalancingv2.Client
	ELB           *elasticloadbalancing.Client
	ServiceQuotas *servicequotas.Client
}

// Region is one region to watch and its clients.
type Region struct {
	Name    string
	Clients Clients
}

// Options configure a Collector.
type Options struct {
	Account string
	Regions []Region
	// QuotaInterval is how often limits are read (default 1h),
	// UsageInterval how often usage and surge demand are (default 5m).
	QuotaInterval, UsageInterval time.Duration
	// ClusterName selects the Auto Scaling groups tagged
	// kubernetes.io/cluster/<ClusterName>; ASGNames adds groups by name.
	ClusterName string
	ASGNames    []string
	// SurgeNodes is how many nodes a group replaces at a time (default 1).
	SurgeNodes int
	// CNI are the VPC CNI's warm pool settings, set from the aws-node
	// DaemonSet's environment: they decide the ENIs and addresses a new
	// node takes at start.
	CNI CNISettings
	// CNIFunc, when set, is asked for the settings at each usage refresh
	// instead of CNI, so that they follow the aws-node DaemonSet.
	CNIFunc func() CNISettings
	Logger  *slog.Logger
}

// Collector is the awsquota collector.
type Collector struct {
	opts       Options
	regions    []*region
	refreshers []*awsapi.Refresher
}

// New returns a Collector; run its Refreshers in the background.
func New(opts Options) *Collector {
	if opts.QuotaInterval <= 0 {
		opts.QuotaInterval = time.Hour
	}
	if opts.UsageInterval <= 0 {
		opts.UsageInterval = 5 * time.Minute
	}
	if opts.CNI.ENIs <= 0 {
		opts.CNI.ENIs = 2
	}
	if opts.CNI.WarmPrefixTarget <= 0 {
		opts.CNI.WarmPrefixTarget = 1
	}
	if opts.SurgeNodes <= 0 {
		opts.SurgeNodes = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Collector{opts: opts}
	for _, r := range opts.Regions {
		reg := &region{
			opts: &c.opts, name: r.Name, cl: r.Clients,
			logger:     opts.Logger.With("collector", "awsquota", "region", r.Name),
			types:      map[string]typeInfo{},
			sources:    map[string]*source{},
			reportPoll: 5 * time.Second,
		}
		c.regions = append(c.regions, reg)
		c.refreshers = append(c.refreshers,
			&awsapi.Refresher{Collector: "awsquota_limits", Account: opts.Account, Region: r.Name, Interval: opts.QuotaInterval, Refresh: reg.refreshLimits},
			&awsapi.Refresher{Collector: "awsquota_usage", Account: opts.Account, Region: r.Name, Interval: opts.UsageInterval, Refresh: reg.refreshUsage},
			&awsapi.Refresher{Collector: "awsquota_report", Account: opts.Account, Region: r.Name, Interval: opts.QuotaInterval, Refresh: reg.refreshReport},
		)
	}
	return c
}

// Refreshers returns the background loops that call AWS.
func (c *Collector) Refreshers() []*awsapi.Refresher { return c.refreshers }

// Update sends the last good values and the refreshers' last-success
// timestamps. It returns an error when the last refresh of any source
// failed (the values sent are then partly stale), and ErrNoData before the
// first refresh.
func (c *Collector) Update(ch chan<- prometheus.Metric) error {
	var errs []error
	sent := false
	for _, r := range c.regions {
		ok, err := r.send(ch, c.opts.Account)
		sent = sent || ok
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, rf := range c.refreshers {
		rf.SendStatus(ch)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !sent {
		return collectors.ErrNoData
	}
	return nil
}

// result is what one source yields.
type result struct {
	usage, limit, surge, ratio map[qkey]float64
	names                      map[qkey]string // from Service Quotas
	// groupIPs are the subnet addresses each group's surge nodes take at
	// start; unresolvedGroups counts the groups whose demand is unknown.
	// groupsKnown says the surge source produced them.
	groupIPs map[string]float64
	// groupPodIPs (custom networking) and groupPrefixes (prefix
	// delegation) split the same need by subnet role and in /28 prefixes.
	groupPodIPs, groupPrefixes map[string]float64
	unresolvedGroups           float64
	groupsKnown                bool
	// groups are the cluster's Auto Scaling groups and their instances
	// (known with groupsKnown); launched the launch times of the pending
	// and running instances, by instance ID.
	groups   []asgGroup
	launched map[string]time.Time
}

// source holds the last good result of one describe call (or group of
// calls) and the error of its last refresh.
type source struct {
	res result
	ok  bool // res holds a good result
	err error
}

type typeInfo struct {
	vcpus int32
	// enis and ipv4PerENI are the VPC CNI's view of the type (see
	// cni.NetworkShape); zero when EC2 gave no network information.
	enis, ipv4PerENI int32
}

type region struct {
	opts   *Options
	name   string
	cl     Clients
	logger *slog.Logger

	typesMu sync.Mutex
	types   map[string]typeInfo

	mu      sync.Mutex
	sources map[string]*source
	// reportPoll is how often a pending quota utilization report is polled.
	reportPoll time.Duration
}

// store records a source's outcome: a good result replaces the last one
// (so deleted resources disappear), a failure keeps it.
func (r *region) store(name string, res result, err error, quotas string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sources[name]
	if s == nil {
		s = &source{}
		r.sources[name] = s
	}
	s.err = err
	if err == nil {
		s.res, s.ok = res, true
		return
	}
	r.logger.Warn("AWS call failed; keeping the last good values of its quotas",
		"operation", name, "quotas", quotas, "had_values", s.ok, "code", awsapi.ErrorCode(err), "err", err)
}

func quotaName(k qkey, sqNames map[qkey]string) string {
	if n := sqNames[k]; n != "" {
		return n
	}
	if n := names[k]; n != "" {
		return n
	}
	return k.code
}

// send emits the merged last good values of every source.
func (r *region) send(ch chan<- prometheus.Metric, account string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	limit, usage, surge, ratio := map[qkey]float64{}, map[qkey]float64{}, map[qkey]float64{}, map[qkey]float64{}
	sqNames := map[qkey]string{}
	launched := map[string]time.Time{}
	var groups result
	// Service Quotas first, so that the fresher limits of other sources
	// (Auto Scaling's DescribeAccountLimits) win.
	keys := sortedKeys(r.sources)
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] == sourceLimits && keys[j] != sourceLimits })
	var errs []error
	sent := false
	for _, name := range keys {
		s := r.sources[name]
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%s in %s: %w", name, r.name, s.err))
		}
		if !s.ok {
			continue
		}
		sent = true
		maps.Copy(limit, s.res.limit)
		maps.Copy(usage, s.res.usage)
		maps.Copy(surge, s.res.surge)
		maps.Copy(ratio, s.res.ratio)
		maps.Copy(sqNames, s.res.names)
		maps.Copy(launched, s.res.launched)
		if s.res.groupsKnown {
			groups = s.res
		}
	}
	emit := func(d *prometheus.Desc, m map[qkey]float64) {
		for k, v := range m {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, account, r.name, k.service, k.code, quotaName(k, sqNames))
		}
	}
	emit(limitDesc, limit)
	emit(usageDesc, usage)
	emit(surgeDesc, surge)
	emit(ratioDesc, ratio)
	if groups.groupsKnown {
		for name, v := range groups.groupIPs {
			ch <- prometheus.MustNewConstMetric(groupIPsDesc, prometheus.GaugeValue, v, account, r.name, name)
		}
		for name, v := range groups.groupPodIPs {
			ch <- prometheus.MustNewConstMetric(groupPodIPsDesc, prometheus.GaugeValue, v, account, r.name, name)
		}
		for name, v := range groups.groupPrefixes {
			ch <- prometheus.MustNewConstMetric(groupPrefixesDesc, prometheus.GaugeValue, v, account, r.name, name)
		}
		ch <- prometheus.MustNewConstMetric(unresolvedDesc, prometheus.GaugeValue, groups.unresolvedGroups, account, r.name)
		sendGroups(ch, account, r.name, groups.groups, launched)
	}
	return sent, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sourceDef is one independent describe call (or a chain that only makes
// sense together) and the quotas it feeds, for log lines.
type sourceDef struct {
	name   string
	quotas string
	run    func(ctx context.Context) (result, error)
}

// refreshUsage runs every usage source concurrently; each keeps or
// replaces its own values.
func (r *region) refreshUsage(ctx context.Context) error {
	defs := r.usageSources()
	errs := make([]error, len(defs))
	var wg sync.WaitGroup
	for i, d := range defs {
		wg.Go(func() {
			res, err := d.run(ctx)
			if err != nil {
				err = fmt.Errorf("%s (quotas %s): %w", d.name, d.quotas, err)
			}
			r.store(d.name, res, err, d.quotas)
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
