package preflight

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgradeguard/upgradeguard/collectors"
	"github.com/upgradeguard/upgradeguard/collectors/awsquota"
	"github.com/upgradeguard/upgradeguard/collectors/cni"
	"github.com/upgradeguard/upgradeguard/collectors/nodes"
	"github.com/upgradeguard/upgradeguard/internal/awsapi"
	"github.com/upgradeguard/upgradeguard/internal/kube"
)

// LocalCapacity is where CapacityFromAWS reads: the cluster (nodes, pods,
// the aws-node DaemonSet, ENIConfigs) and one AWS account and region.
type LocalCapacity struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	AWS     aws.Config // region set
	// ClusterName is the name in kubernetes.io/cluster/<name> tags of the
	// cluster's subnets and Auto Scaling groups.
	ClusterName string
	SyncTimeout time.Duration
	Logger      *slog.Logger
}

// CapacityFromAWS runs the exporter's cni and awsquota collectors once, as
// the exporter would (the same options as internal/exporter's newSet, each
// refresher once instead of in a loop), gathers their metrics from a
// registry of its own and reads the capacity data from them: the same
// numbers the exporter would serve, without a query URL.
func CapacityFromAWS(ctx context.Context, o LocalCapacity) CapacityData {
	d := CapacityData{Source: "AWS"}
	fail := func(err error) CapacityData {
		d.QuotaErr, d.IPErr = err, err
		return d
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 2 * time.Minute
	}
	id, err := sts.NewFromConfig(o.AWS).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return fail(fmt.Errorf("identifying the AWS account: %w", err))
	}
	account := aws.ToString(id.Account)

	// The cni collector reads each node's instance type label (its
	// upgradeguard_node_ip_capacity): keep the labels the exporter keeps.
	informers := kube.NewInformers(o.Kube, kube.Options{NodeLabels: nodes.Options{}.NodeLabels()}, o.Logger)
	awsNode, nodes, pods := informers.AWSNode(), informers.Nodes(), informers.Pods()
	var eniConfigs *kube.Informer
	if o.Dynamic != nil {
		eniConfigs = informers.ENIConfigs(o.Dynamic)
	}
	ictx, stop := context.WithCancel(ctx)
	defer stop()
	informers.Start(ictx)
	sctx, cancel := context.WithTimeout(ctx, o.SyncTimeout)
	err = informers.WaitForSync(sctx)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("reading the cluster for the VPC CNI's settings: %w", err))
	}
	overrides := cni.Overrides{}
	cniC := cni.New(cni.Options{
		EC2: ec2.NewFromConfig(o.AWS), Account: account, Region: o.AWS.Region,
		Nodes: nodes, Pods: pods, AWSNode: awsNode, ENIConfigs: eniConfigs,
		ClusterName: o.ClusterName, Overrides: overrides, Logger: o.Logger,
	})
	quotaC := awsquota.New(awsquota.Options{
		Account: account,
		Regions: []awsquota.Region{{Name: o.AWS.Region, Clients: awsquota.Clients{
			EC2:           ec2.NewFromConfig(o.AWS),
			AutoScaling:   autoscaling.NewFromConfig(o.AWS),
			ELBv2:         elasticloadbalancingv2.NewFromConfig(o.AWS),
			ELB:           elasticloadbalancing.NewFromConfig(o.AWS),
			ServiceQuotas: servicequotas.NewFromConfig(o.AWS),
		}}},
		ClusterName: o.ClusterName, SurgeNodes: 1,
		CNIFunc: func() awsquota.CNISettings {
			s := cni.CurrentSettings(awsNode, overrides)
			return awsquota.CNISettings{
				ENIs: 1 + s.WarmENITarget, WarmIPTarget: s.WarmIPTarget, MinimumIPTarget: s.MinimumIPTarget,
				PrefixDelegation: s.PrefixDelegation, WarmPrefixTarget: s.WarmPrefixTarget, CustomNetworking: s.CustomNetworking,
			}
		},
		Logger: o.Logger,
	})
	var refreshers []*awsapi.Refresher
	refreshers = append(refreshers, cniC.Refreshers()...)
	refreshers = append(refreshers, quotaC.Refreshers()...)
	var errs []error
	for _, r := range refreshers {
		if err := r.Refresh(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Collector, err))
		}
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewSet(map[string]collectors.Collector{"cni": cniC, "awsquota": quotaC}, o.Logger)); err != nil {
		return fail(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		return fail(fmt.Errorf("gathering the collectors' metrics: %w", err))
	}
	d = capacityFromFamilies(mfs)
	for _, e := range errs {
		// A refresh that failed leaves its metrics out: say why.
		if d.QuotaErr != nil {
			d.QuotaErr = fmt.Errorf("%w (%v)", d.QuotaErr, e)
		}
		if d.IPErr != nil {
			d.IPErr = fmt.Errorf("%w (%v)", d.IPErr, e)
		}
	}
	return d
}

// capacityFromFamilies computes, from gathered metric families, what
// CapacityQueries ask the monitoring for.
func capacityFromFamilies(mfs []*dto.MetricFamily) CapacityData {
	d := CapacityData{Source: "AWS"}
	series := map[string]map[string]*sampleOf{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			lm := model.Metric{}
			for _, l := range m.GetLabel() {
				lm[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
			}
			if series[mf.GetName()] == nil {
				series[mf.GetName()] = map[string]*sampleOf{}
			}
			series[mf.GetName()][lm.String()] = &sampleOf{lm, m.GetGauge().GetValue()}
		}
	}
	usage, surge, limit := series["upgradeguard_aws_quota_usage"], series["upgradeguard_aws_quota_surge_demand"], series["upgradeguard_aws_quota_limit"]
	for k, l := range limit {
		u, s := usage[k], surge[k]
		if u == nil || s == nil || l.v <= 0 {
			continue
		}
		d.Quotas = append(d.Quotas, &model.Sample{Metric: l.m, Value: model.SampleValue((u.v + s.v) / l.v)})
	}
	if len(d.Quotas) == 0 {
		d.QuotaErr = fmt.Errorf("the awsquota collector gave no quota with usage, surge demand and limit")
	}
	for _, z := range series["upgradeguard_zone_available_ips"] {
		d.Zones = append(d.Zones, &model.Sample{Metric: z.m, Value: model.SampleValue(z.v)})
	}
	maxOf := func(name string) *float64 {
		var m *float64
		for _, s := range series[name] {
			if m == nil || s.v > *m {
				v := s.v
				m = &v
			}
		}
		return m
	}
	if d.SurgeIPs = maxOf("upgradeguard_aws_asg_surge_ips"); d.SurgeIPs == nil {
		d.SurgeIPs = maxOf("upgradeguard_node_ip_capacity")
	}
	if len(d.Zones) == 0 || d.SurgeIPs == nil {
		d.IPErr = fmt.Errorf("the cni collector gave no zone free addresses or surge addresses")
	}
	return d
}

type sampleOf struct {
	m model.Metric
	v float64
}
